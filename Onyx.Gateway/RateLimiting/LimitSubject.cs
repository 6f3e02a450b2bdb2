
namespace Onyx.Gateway.RateLimiting;

internal enum LimitKind
{
    Requests,
    Tokens,
    Parallel,

    /// <summary>The key's <c>max_budget</c>: its window's spend and what its calls in flight reserved reached it.</summary>
    Budget,

    /// <summary>The key's <c>model_max_budget</c> for the requested alias.</summary>
    ModelBudget,
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
        new(UserScope, Telemetry.LogText.Safe(userId), UserKeyOf(userId), rpm, tpm, maxParallel);

    /// <summary>The user's hash tag: every counter of the user, its end users and its keys' budgets, shares its slot.</summary>
    public static string UserKeyOf(string userId) => $"onyx:rl:{{{Uri.EscapeDataString(userId)}}}";

    /// <summary>The user part of this subject's key (<see cref="UserKeyOf"/>).</summary>
    public string UserKey => Key[..(Key.IndexOf('}') + 1)];

    public LimitSubject EndUser(string endUser, long rpm, long tpm) =>
        new(EndUserScope, Telemetry.LogText.Safe(endUser), $"{Key}:end:{Uri.EscapeDataString(endUser)}", rpm, tpm, 0);

    public long Limit(LimitKind kind) => kind switch
    {
        LimitKind.Requests => Rpm,
        LimitKind.Tokens => Tpm,
        _ => MaxParallel,
    };
}
