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
    /// <c>false</c> switches the audit trail off: no record is written anywhere. For a gateway whose operator keeps no
    /// audit, rather than one that silently loses it.
    /// </summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// The trail's name in its spill files, instead of the Redis target (endpoints and database). Set it when the
    /// replicas of one deployment name their Redis differently (an address here, a DNS name there), or when the
    /// Redis moves (a new port each run, a failover to other endpoints) but the trail stays the same.
    /// </summary>
    public string? TrailName { get; set; }

    /// <summary>
    /// Where each replica keeps its spill file while Redis is unreachable. Relative paths are under the content root;
    /// not set: <c>&lt;content root&gt;/data/audit</c>. A file left by a replica that is gone is replayed (and deleted)
    /// by the next replica of the same trail that starts with this directory; files of other trails are left alone.
    /// </summary>
    public string? SpillDirectory { get; set; }

    /// <summary>
    /// The most a replica's spill file may hold. Past it, newer records are dropped (counted and logged) until Redis
    /// answers and the file is replayed: the file keeps the outage's records from its start, without holes.
    /// </summary>
    public long SpillMaxBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>The standalone audit file: the audit trail of a gateway without Redis.</summary>
    public AuditFileOptions File { get; set; } = new();

    /// <summary>While records are spilled, how often the writer tries Redis again.</summary>
    public TimeSpan RetryInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest one Redis write may take before its batch counts as not written (and is spilled).</summary>
    public TimeSpan WriteTimeout { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>The standalone audit file (section <c>Onyx:Audit:File</c>): JSON lines, rotated by size.</summary>
internal sealed class AuditFileOptions
{
    /// <summary>The most files <see cref="MaxFiles"/> may keep: a bound, not a setting anyone should reach.</summary>
    public const int MostFiles = 1000;

    /// <summary>Where <c>audit.jsonl</c> and its rotated predecessors live; not set: the spill directory.</summary>
    public string? Directory { get; set; }

    /// <summary>A file this large is rotated: <c>audit.jsonl</c> becomes <c>audit.1.jsonl</c>, and so on.</summary>
    public long MaxBytes { get; set; } = 100L * 1024 * 1024;

    /// <summary>Files kept, the current one included; the oldest is deleted when a rotation would keep more.</summary>
    public int MaxFiles { get; set; } = 10;
}

internal sealed class AuditOptionsValidator : IValidateOptions<AuditOptions>
{
    /// <summary>Below this a file would hold a handful of records: a typo (a missing unit), not a bound.</summary>
    private const long MinFileBytes = 64 * 1024;

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
        if (options.SpillMaxBytes < MinFileBytes)
        {
            errors.Add($"Onyx:Audit:SpillMaxBytes must be at least {MinFileBytes} bytes.");
        }
        if (options.TrailName is { } trail && (trail.Length == 0 || trail.Trim() != trail || trail.Any(char.IsControl)))
        {
            errors.Add("Onyx:Audit:TrailName must be a name without leading or trailing spaces or control characters.");
        }
        if (string.IsNullOrWhiteSpace(options.File.Directory))
        {
            errors.Add("Onyx:Audit:File:Directory must not be empty.");
        }
        if (options.File.MaxBytes < MinFileBytes)
        {
            errors.Add($"Onyx:Audit:File:MaxBytes must be at least {MinFileBytes} bytes.");
        }
        if (options.File.MaxFiles is < 1 or > AuditFileOptions.MostFiles)
        {
            errors.Add($"Onyx:Audit:File:MaxFiles must be from 1 to {AuditFileOptions.MostFiles}.");
        }
        if (options.RetryInterval <= TimeSpan.Zero || options.WriteTimeout <= TimeSpan.Zero)
        {
            errors.Add("Onyx:Audit:RetryInterval and WriteTimeout must be positive.");
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
