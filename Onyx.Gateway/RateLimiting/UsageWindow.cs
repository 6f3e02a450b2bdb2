using System.Globalization;

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

/// <summary>What one subject has used in the current window, and when its oldest request and tokens leave it.</summary>
internal readonly record struct SubjectUsage(long Requests, TimeSpan RequestsReset, long Tokens, TimeSpan TokensReset);

/// <summary>
/// A store's answer: admitted (and counted, its budget estimate reserved), or refused by the first limit reached — a
/// budget (<see cref="RefusedSubject"/> -1) before any rate limit.
/// </summary>
internal sealed record Admission(bool Admitted, int RefusedSubject, LimitKind RefusedLimit, TimeSpan RetryAfter, SubjectUsage[] Usage)
{
    /// <summary>The key's budget as the admission found it (with this request's reservation when admitted).</summary>
    public BudgetUsage? Budget { get; init; }

    public static Admission Refuse(int subject, LimitKind limit, TimeSpan retryAfter, SubjectUsage[] usage) =>
        new(false, subject, limit, retryAfter, usage);

    public static Admission Admit(SubjectUsage[] usage) => new(true, -1, default, TimeSpan.Zero, usage);
}

/// <summary>
/// US dollars as whole units of 10⁻⁸ — the precision a call's cost is rounded to — so that Redis and Lua add them
/// exactly (a Lua number holds integers exactly up to 2⁵³ units, about 90 million dollars).
/// </summary>
internal static class UsdUnits
{
    public const decimal PerDollar = 100_000_000m;

    public static long From(decimal usd) => (long)Math.Round(usd * PerDollar, MidpointRounding.AwayFromZero);

    public static decimal ToUsd(long units) => units / PerDollar;
}

/// <summary>
/// A key's budget, checked and reserved at admission: the request is admitted only while the key's spend in its window
/// plus what its calls in flight have reserved is below <see cref="MaxBudget"/> (and likewise for the alias's model
/// budget); it then reserves <see cref="Estimate"/> until its call settles. Amounts in <see cref="UsdUnits"/>; times in
/// Unix milliseconds of the gateway's clock (<see cref="TimeProvider"/>), so budget windows follow the clock operators set.
/// </summary>
/// <param name="KeyNextReset">When a budget window of the key that started now would end (0: the key's budget never resets).</param>
/// <param name="ModelMaxBudget">The alias's budget within the key (null: none).</param>
internal sealed record BudgetClaim(string KeyHash, long? MaxBudget, long KeyNextReset, string Alias, long? ModelMaxBudget, long ModelNextReset,
    long Estimate, long Now)
{
    /// <summary>The reservation as the store keeps it: the call, the amount, and the alias whose budget it also holds.</summary>
    public string ReservationFor(string member) =>
        string.Create(CultureInfo.InvariantCulture, $"{member}|{Estimate}|{(ModelMaxBudget is null ? "" : Alias)}");
}

/// <summary>A key's budget as a store holds it: the window's spend, what calls in flight reserved, when the window ends.</summary>
internal readonly record struct BudgetUsage(long Spend, long Reserved, long ResetAt, long ModelSpend, long ModelReserved, long ModelResetAt);

/// <summary>
/// What a finished call cost its key (<see cref="UsdUnits"/>), settled once per call (<see cref="CallId"/>): the
/// reservation it made at admission is released and the real cost added to the key's spend (and to the alias's, when the
/// key has a budget for it). A settlement sent twice — a retried write whose first try did land — counts once.
/// </summary>
/// <param name="Reservation">The reservation to release (<see cref="BudgetClaim.ReservationFor"/>), or null.</param>
/// <param name="ModelAlias">The alias whose spend is counted too (the key has a <c>model_max_budget</c> for it), or null.</param>
/// <param name="SoftBudget">The key's <c>soft_budget</c>, or -1: the settlement says when it is crossed.</param>
internal sealed record Settlement(string KeyHash, string CallId, long Cost, string? Reservation, string? ModelAlias, long KeyNextReset,
    long ModelNextReset, long SoftBudget, long Now);

/// <summary>A settlement's outcome: whether it was counted now (false: it had been already), and whether it crossed the soft budget.</summary>
internal readonly record struct SettleResult(bool Applied, bool CrossedSoftBudget, long Spend);

/// <summary>One request to admit: the user whose counters it touches, its subjects, its member, and its key's budget.</summary>
internal sealed record AdmissionRequest(string UserKey, IReadOnlyList<LimitSubject> Subjects, string Member, BudgetClaim? Budget = null);

/// <summary>
/// The counters behind the limits: a rolling-window log of requests and of tokens per subject (exact: no fixed
/// window that lets twice the limit through at a minute's edge), and the requests in flight.
/// </summary>
internal interface IUsageStore
{
    /// <summary>
    /// Checks the key's budget and every subject's limits and, if none is reached, counts the request (as its member)
    /// for all and reserves its budget estimate.
    /// </summary>
    Task<Admission> AdmitAsync(AdmissionRequest request, CancellationToken cancellationToken);

    /// <summary>
    /// Adds finished calls' tokens to their subjects' windows, frees their parallel slots and settles their cost; returns
    /// each settlement's outcome, in order.
    /// </summary>
    Task<IReadOnlyList<SettleResult>> RecordAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken);
}

/// <summary>
/// A finished call: its tokens, for the subjects its request was counted under (as <paramref name="Member"/>; none when
/// they were counted elsewhere: then <paramref name="SettlementUserKey"/> names the user), and its cost to settle.
/// </summary>
internal sealed record UsageRecord(IReadOnlyList<LimitSubject> Subjects, string Member, long Tokens, Settlement? Settlement = null, string? SettlementUserKey = null)
{
    /// <summary>The user's key (<see cref="LimitSubject.UserKeyOf"/>): records of one user go to Redis together.</summary>
    public string UserKey => SettlementUserKey ?? Subjects[0].UserKey;
}

/// <summary>A key's budget as a store holds it: its window's spend, reservations and end, and the same per alias.</summary>
internal sealed record BudgetState(long Spend, long Reserved, long ResetAt, IReadOnlyDictionary<string, ModelBudgetState> Models)
{
    /// <summary>Reads the fields of a key's budget hash (see <see cref="RedisUsageStore"/>).</summary>
    public static BudgetState Parse(IEnumerable<(string Field, long Value)> fields)
    {
        long spend = 0, reserved = 0, resetAt = 0;
        var models = new Dictionary<string, (long Spend, long Reserved, long ResetAt)>(StringComparer.Ordinal);
        foreach (var (field, value) in fields)
        {
            switch (field)
            {
                case "spend":
                    spend = value;
                    continue;
                case "reserved":
                    reserved = value;
                    continue;
                case "reset_at":
                    resetAt = value;
                    continue;
            }
            var end = field.LastIndexOf(':');
            if (!field.StartsWith("m:", StringComparison.Ordinal) || end <= 2)
            {
                continue;
            }
            var alias = field[2..end];
            var model = models.GetValueOrDefault(alias);
            models[alias] = field[(end + 1)..] switch
            {
                "spend" => model with { Spend = value },
                "reserved" => model with { Reserved = value },
                "reset_at" => model with { ResetAt = value },
                _ => model,
            };
        }
        return new BudgetState(spend, reserved, resetAt,
            models.ToDictionary(m => m.Key, m => new ModelBudgetState(m.Value.Spend, m.Value.Reserved, m.Value.ResetAt), StringComparer.Ordinal));
    }
}

internal sealed record ModelBudgetState(long Spend, long Reserved, long ResetAt);
