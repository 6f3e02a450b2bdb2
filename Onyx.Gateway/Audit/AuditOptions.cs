using Microsoft.Extensions.Options;

namespace Onyx.Gateway.Audit;

/// <summary>The audit trail's settings (section <c>Onyx:Audit</c>).</summary>
internal sealed class AuditOptions
{
    public const string SectionName = "Onyx:Audit";

    /// <summary>The LiteLLM-style switch in the config file, used when <c>Onyx:Audit:IncludeContent</c> is not set.</summary>
    public const string LiteLlmIncludeContentKey = "general_settings:audit:include_content";

    /// <summary>Record the request's messages and the answer's text. Off by default: they may hold personal data.</summary>
    public bool IncludeContent { get; set; }

    /// <summary>The Redis stream's key. The braces are a Redis Cluster hash tag: the stream and its id set share a slot.</summary>
    public string StreamKey { get; set; } = "onyx:{audit}";

    /// <summary>Keep about this many records (Redis trims whole macro nodes, so a few more); 0: no length limit.</summary>
    public long MaxLength { get; set; } = 1_000_000;

    /// <summary>Drop records older than this (by their stream id); <c>null</c> or zero: no age limit.</summary>
    public TimeSpan? MaxAge { get; set; } = TimeSpan.FromDays(30);

    /// <summary>How long Redis remembers a written record's id, so a replay of it is skipped rather than duplicated.</summary>
    public TimeSpan DedupeWindow { get; set; } = TimeSpan.FromDays(1);

    /// <summary>Records waiting in memory for the writer; when full, a request writes its record to the spill file itself.</summary>
    public int QueueCapacity { get; set; } = 10_000;

    /// <summary>At most this many records per Redis round trip.</summary>
    public int BatchSize { get; set; } = 256;

    /// <summary>
    /// How long the writer lets records gather before it writes a batch that is not yet full: under load, one Redis
    /// round trip or one fsync per this interval instead of one per few requests. Never on a request's path; at
    /// graceful shutdown the queue is written at once.
    /// </summary>
    public TimeSpan BatchDelay { get; set; } = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// Where records go while Redis is unreachable: one append-only JSON-lines file per running replica. A file left
    /// by a replica that is gone is replayed (and deleted) by the next replica that starts with the same directory.
    /// </summary>
    public string SpillDirectory { get; set; } = Path.Combine(Path.GetTempPath(), "onyx-audit");

    /// <summary>While records are spilled, how often the writer tries Redis again.</summary>
    public TimeSpan RetryInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest one Redis write may take before its batch counts as not written (and is spilled).</summary>
    public TimeSpan WriteTimeout { get; set; } = TimeSpan.FromSeconds(5);
}

internal sealed class AuditOptionsValidator : IValidateOptions<AuditOptions>
{
    public ValidateOptionsResult Validate(string? name, AuditOptions options)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(options.StreamKey))
        {
            errors.Add("Onyx:Audit:StreamKey must not be empty.");
        }
        if (options.MaxLength < 0)
        {
            errors.Add("Onyx:Audit:MaxLength must not be negative (0 means no length limit).");
        }
        if (options.MaxAge < TimeSpan.Zero)
        {
            errors.Add("Onyx:Audit:MaxAge must not be negative.");
        }
        if (options.DedupeWindow <= TimeSpan.Zero)
        {
            errors.Add("Onyx:Audit:DedupeWindow must be positive.");
        }
        if (options.BatchDelay < TimeSpan.Zero || options.BatchDelay > TimeSpan.FromSeconds(1))
        {
            errors.Add("Onyx:Audit:BatchDelay must be between 0 and 1 second.");
        }
        if (options.QueueCapacity < 1 || options.BatchSize < 1)
        {
            errors.Add("Onyx:Audit:QueueCapacity and BatchSize must be at least 1.");
        }
        if (string.IsNullOrWhiteSpace(options.SpillDirectory))
        {
            errors.Add("Onyx:Audit:SpillDirectory must not be empty.");
        }
        if (options.RetryInterval <= TimeSpan.Zero || options.WriteTimeout <= TimeSpan.Zero)
        {
            errors.Add("Onyx:Audit:RetryInterval and WriteTimeout must be positive.");
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
