using System.Globalization;

namespace Onyx.Gateway.RateLimiting;

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

/// <summary>One request to admit: the user whose counters it touches, its subjects, its member, and its key's budget.</summary>
internal sealed record AdmissionRequest(string UserKey, IReadOnlyList<LimitSubject> Subjects, string Member, BudgetClaim? Budget = null);

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

/// <summary>What one subject has used in the current window, and when its oldest request and tokens leave it.</summary>
internal readonly record struct SubjectUsage(long Requests, TimeSpan RequestsReset, long Tokens, TimeSpan TokensReset);

/// <summary>
/// A finished call: its tokens, for the subjects its request was counted under (as <paramref name="Member"/>; none when
/// they were counted elsewhere: then <paramref name="SettlementUserKey"/> names the user), and its cost to settle.
/// </summary>
internal sealed record UsageRecord(IReadOnlyList<LimitSubject> Subjects, string Member, long Tokens, Settlement? Settlement = null, string? SettlementUserKey = null)
{
    /// <summary>The user's key (<see cref="LimitSubject.UserKeyOf"/>): records of one user go to Redis together.</summary>
    public string UserKey => SettlementUserKey ?? Subjects[0].UserKey;
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
