namespace Onyx.Gateway.RateLimiting;

internal enum LimitKind
{
    Requests,
    Tokens,
    Parallel,
}

/// <summary>
/// Something counted on its own: a user (the key's <c>user_id</c>), or an end user (OpenAI's <c>user</c>) within
/// one. <see cref="Key"/> names its counters; the user part is a Redis Cluster hash tag, so one user's counters —
/// end users included — share a slot and one script can update them all atomically. A limit of 0 means none.
/// </summary>
internal sealed record LimitSubject(string Scope, string Name, string Key, long Rpm, long Tpm, long MaxParallel)
{
    public const string UserScope = "user";
    public const string EndUserScope = "end_user";

    // The name goes into log lines and refusals, so it is made log-safe; the key is escaped for Redis.
    public static LimitSubject User(string userId, long rpm, long tpm, long maxParallel) =>
        new(UserScope, Telemetry.LogText.Safe(userId), $"onyx:rl:{{{Uri.EscapeDataString(userId)}}}", rpm, tpm, maxParallel);

    public LimitSubject EndUser(string endUser, long rpm, long tpm) =>
        new(EndUserScope, Telemetry.LogText.Safe(endUser), $"{Key}:end:{Uri.EscapeDataString(endUser)}", rpm, tpm, 0);

    public long Limit(LimitKind kind) => kind switch
    {
        LimitKind.Requests => Rpm,
        LimitKind.Tokens => Tpm,
        _ => MaxParallel,
    };
}

/// <summary>What one subject has used in the current window, and when its oldest request and tokens leave it.</summary>
internal readonly record struct SubjectUsage(long Requests, TimeSpan RequestsReset, long Tokens, TimeSpan TokensReset);

/// <summary>A store's answer: admitted (and counted), or refused by the first limit reached.</summary>
internal sealed record Admission(bool Admitted, int RefusedSubject, LimitKind RefusedLimit, TimeSpan RetryAfter, SubjectUsage[] Usage)
{
    public static Admission Refuse(int subject, LimitKind limit, TimeSpan retryAfter, SubjectUsage[] usage) =>
        new(false, subject, limit, retryAfter, usage);

    public static Admission Admit(SubjectUsage[] usage) => new(true, -1, default, TimeSpan.Zero, usage);
}

/// <summary>
/// The counters behind the limits: a rolling-window log of requests and of tokens per subject (exact: no fixed
/// window that lets twice the limit through at a minute's edge), and the requests in flight.
/// </summary>
internal interface IUsageStore
{
    /// <summary>Checks every subject's limits and, if none is reached, counts the request (as <paramref name="member"/>) for all.</summary>
    Task<Admission> AdmitAsync(IReadOnlyList<LimitSubject> subjects, string member, CancellationToken cancellationToken);

    /// <summary>Adds finished calls' tokens to their subjects' windows and frees their parallel slots.</summary>
    Task RecordAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken);
}

/// <summary>A finished call's tokens, for the subjects its request was counted under (as <paramref name="Member"/>).</summary>
internal sealed record UsageRecord(IReadOnlyList<LimitSubject> Subjects, string Member, long Tokens);
