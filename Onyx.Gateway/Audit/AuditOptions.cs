using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;

namespace Onyx.Gateway.Audit;

/// <summary>The audit trail's settings (section <c>Onyx:Audit</c>).</summary>
[OptionsSection(SectionName)]
internal sealed class AuditOptions
{
    public const string SectionName = "Onyx:Audit";

    /// <summary>Below this a file would hold a handful of records: a typo (a missing unit), not a bound.</summary>
    public const long MinFileBytes = 64 * 1024;

    /// <summary>The LiteLLM-style switch in the config file, used when <c>Onyx:Audit:IncludeContent</c> is not set.</summary>
    public const string LiteLlmIncludeContentKey = "general_settings:audit:include_content";

    /// <summary>Record the request's messages and the answer's text. Off by default: they may hold personal data.</summary>
    public bool IncludeContent { get; set; }

    /// <summary>The Redis stream's key. The braces are a Redis Cluster hash tag: the stream and its id set share a slot.</summary>
    [NotBlank]
    public string StreamKey { get; set; } = "onyx:{audit}";

    /// <summary>Keep about this many records (Redis trims whole macro nodes, so a few more); 0: no length limit.</summary>
    [NotNegative(Why = "0 means no length limit")]
    public long MaxLength { get; set; } = 1_000_000;

    /// <summary>Drop records older than this (by their stream id); <c>null</c> or zero: no age limit.</summary>
    [NotNegative]
    public TimeSpan? MaxAge { get; set; } = TimeSpan.FromDays(30);

    /// <summary>How long Redis remembers a written record's id, so a replay of it is skipped rather than duplicated.</summary>
    [Positive]
    public TimeSpan DedupeWindow { get; set; } = TimeSpan.FromDays(1);

    /// <summary>Records waiting in memory for the writer; when full, a request writes its record to the spill file itself.</summary>
    [Between(1)]
    public int QueueCapacity { get; set; } = 10_000;

    /// <summary>At most this many records per Redis round trip.</summary>
    [Between(1)]
    public int BatchSize { get; set; } = 256;

    /// <summary>
    /// How long the writer lets records gather before it writes a batch that is not yet full: under load, one Redis
    /// round trip or one fsync per this interval instead of one per few requests. Never on a request's path; at
    /// graceful shutdown the queue is written at once.
    /// </summary>
    [DurationBetween("00:00:00", "00:00:01")]
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
    [Between(MinFileBytes, Unit = "bytes")]
    public long SpillMaxBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>The standalone audit file: the audit trail of a gateway without Redis.</summary>
    [ValidateObjectMembers]
    public AuditFileOptions File { get; set; } = new();

    /// <summary>While records are spilled, how often the writer tries Redis again.</summary>
    [Positive]
    public TimeSpan RetryInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest one Redis write may take before its batch counts as not written (and is spilled).</summary>
    [Positive]
    public TimeSpan WriteTimeout { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>The standalone audit file (section <c>Onyx:Audit:File</c>): JSON lines, rotated by size.</summary>
[OptionsSection(AuditOptions.SectionName + ":File")]
internal sealed class AuditFileOptions
{
    /// <summary>The most files <see cref="MaxFiles"/> may keep: a bound, not a setting anyone should reach.</summary>
    public const int MostFiles = 1000;

    /// <summary>Where <c>audit.jsonl</c> and its rotated predecessors live; not set: the spill directory.</summary>
    public string? Directory { get; set; }

    /// <summary>A file this large is rotated: <c>audit.jsonl</c> becomes <c>audit.1.jsonl</c>, and so on.</summary>
    [Between(AuditOptions.MinFileBytes, Unit = "bytes")]
    public long MaxBytes { get; set; } = 100L * 1024 * 1024;

    /// <summary>Files kept, the current one included; the oldest is deleted when a rotation would keep more.</summary>
    [Between(1, MostFiles)]
    public int MaxFiles { get; set; } = 10;
}

/// <summary>Bounds of single values, from the attributes on the options; the validator is generated at compile time.</summary>
[OptionsValidator]
internal sealed partial class AuditOptionsAnnotations : IValidateOptions<AuditOptions>;

/// <summary>What no attribute on a single value says: the directories as resolved, and the trail's name.</summary>
internal sealed class AuditOptionsValidator : IValidateOptions<AuditOptions>
{
    public ValidateOptionsResult Validate(string? name, AuditOptions options)
    {
        var errors = new List<string>();
        // Resolved after binding (a default under the content root), so not an attribute's to check.
        if (string.IsNullOrWhiteSpace(options.SpillDirectory))
        {
            errors.Add("Onyx:Audit:SpillDirectory must not be empty.");
        }
        if (string.IsNullOrWhiteSpace(options.File.Directory))
        {
            errors.Add("Onyx:Audit:File:Directory must not be empty.");
        }
        if (options.TrailName is { } trail && (trail.Length == 0 || trail.Trim() != trail || trail.Any(char.IsControl)))
        {
            errors.Add("Onyx:Audit:TrailName must be a name without leading or trailing spaces or control characters.");
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
