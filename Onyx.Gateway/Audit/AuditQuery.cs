namespace Onyx.Gateway.Audit;

/// <summary>
/// Which audit records to read: every filter given must match (none given: every record). <c>GET /audit</c> filters by
/// user and time; the admin console by any of them.
/// </summary>
internal sealed record AuditQuery
{
    public string? User { get; init; }

    /// <summary>The key's masked name (<c>sk-...x4Qz</c>), a config key's alias or <c>master key</c>.</summary>
    public string? KeyName { get; init; }

    public string? Alias { get; init; }

    public int? Status { get; init; }

    public bool? Fallback { get; init; }

    /// <summary>True: only streams resumed on another deployment; false: only those never resumed.</summary>
    public bool? Resumed { get; init; }

    public string? RequestId { get; init; }

    /// <summary>Inclusive, on the record's own time.</summary>
    public DateTimeOffset? Since { get; init; }

    /// <summary>Inclusive, on the record's own time.</summary>
    public DateTimeOffset? Until { get; init; }

    public static AuditQuery All { get; } = new();

    public bool Matches(AuditRecord record) =>
        (User is null || record.UserId == User)
        && (KeyName is null || record.KeyName == KeyName)
        && (Alias is null || record.Alias == Alias)
        && (Status is null || record.Status == Status)
        && (Fallback is null || record.Fallback == Fallback)
        && (Resumed is null || (record.Resumed is { Count: > 0 }) == Resumed)
        && (RequestId is null || record.RequestId == RequestId)
        && record.Timestamp >= (Since ?? DateTimeOffset.MinValue)
        && record.Timestamp <= (Until ?? DateTimeOffset.MaxValue);
}

/// <summary>A record with its stream entry's id, which names it in the stream (for a link to it, or a cursor).</summary>
internal sealed record AuditEntry(string Id, AuditRecord Record);

/// <summary>
/// Records newest first, as the stream gave them; <see cref="NextCursor"/> goes on where the read stopped (null: the
/// stream has no older match). <see cref="ScanLimitReached"/>: the read stopped at its bound on entries read, not at
/// the end of the page or of the stream.
/// </summary>
internal sealed record AuditEntries(IReadOnlyList<AuditEntry> Entries, bool HasMore, string? NextCursor, bool ScanLimitReached);
