using System.Globalization;
using System.Text;
using Onyx.Gateway.Auth;
using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.RateLimiting;

/// <summary>The limiter's answer for one request, and the <c>x-ratelimit-*</c> headers and 429 that go with it.</summary>
internal sealed class RateLimitDecision
{
    private readonly Admission? _admission;
    private readonly IReadOnlyList<LimitSubject> _subjects;
    private readonly TimeSpan _window;
    private readonly bool _unavailable;

    public RateLimitDecision(Admission? admission, IReadOnlyList<LimitSubject> subjects, RateLimitLease? lease, TimeSpan window, bool unavailable = false)
    {
        _admission = admission;
        _subjects = subjects;
        _window = window;
        _unavailable = unavailable;
        Lease = lease;
    }

    /// <summary>LiteLLM's error type for a key over its budget.</summary>
    public const string BudgetExceeded = "budget_exceeded";

    /// <summary>No limit applies (limits off, or all of them 0).</summary>
    public static RateLimitDecision Unlimited { get; } = new(null, [], null, TimeSpan.Zero);

    /// <summary>Fail-closed and Redis is unreachable: no decision can be made.</summary>
    public static RateLimitDecision StoreUnavailable(IReadOnlyList<LimitSubject> subjects) => new(null, subjects, null, TimeSpan.Zero, unavailable: true);

    public bool Admitted => _admission?.Admitted ?? !_unavailable;

    /// <summary>Set when admitted: report the call's tokens and cost through it when the call ends.</summary>
    public RateLimitLease? Lease { get; }

    /// <summary>OpenAI's headers, for the user's limits: <c>x-ratelimit-{limit,remaining,reset}-{requests,tokens}</c>.</summary>
    public void WriteHeaders(IHeaderDictionary headers)
    {
        if (_admission is null || _subjects.Count == 0)
        {
            return;
        }
        var user = _subjects[0];
        var usage = _admission.Usage[0];
        if (user.Rpm > 0)
        {
            headers["x-ratelimit-limit-requests"] = user.Rpm.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-remaining-requests"] = Math.Max(0, user.Rpm - usage.Requests).ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-reset-requests"] = FormatDuration(usage.RequestsReset);
        }
        if (user.Tpm > 0)
        {
            headers["x-ratelimit-limit-tokens"] = user.Tpm.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-remaining-tokens"] = Math.Max(0, user.Tpm - usage.Tokens).ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-reset-tokens"] = FormatDuration(usage.TokensReset);
        }
    }

    /// <summary>
    /// The refusal: LiteLLM's 400 <c>budget_exceeded</c> for a key over its budget (no Retry-After: waiting for the
    /// window may take days), a 429 that says which limit and when to come back, or a 503 when fail-closed.
    /// </summary>
    public (int Status, OpenAiError Error, TimeSpan? RetryAfter) Refusal()
    {
        if (_admission is { RefusedLimit: LimitKind.Budget or LimitKind.ModelBudget, Budget: { } budget } refusedByBudget)
        {
            return (StatusCodes.Status400BadRequest, new OpenAiError(BudgetMessage(refusedByBudget.RefusedLimit, budget), BudgetExceeded, null, "400"), null);
        }
        if (_admission is null)
        {
            return (StatusCodes.Status503ServiceUnavailable, new OpenAiError(
                "Rate limits cannot be checked right now (Redis is unreachable and the gateway is configured fail-closed). Try again shortly.",
                OpenAiErrorTypes.ServiceUnavailable, null, "rate_limiter_unavailable"), TimeSpan.FromSeconds(1));
        }
        var subject = _subjects[_admission.RefusedSubject];
        var kind = _admission.RefusedLimit;
        var usage = _admission.Usage[_admission.RefusedSubject];
        var who = subject.Scope == LimitSubject.UserScope ? $"user '{subject.Name}'" : $"end user '{subject.Name}'";
        var message = kind switch
        {
            LimitKind.Requests => $"Rate limit reached for {who}: {subject.Rpm} requests per {FormatDuration(_window)}, {usage.Requests} used.",
            LimitKind.Tokens => $"Token limit reached for {who}: {subject.Tpm} tokens per {FormatDuration(_window)}, {usage.Tokens} used.",
            _ => $"Parallel request limit reached for {who}: {subject.MaxParallel} requests in flight.",
        };
        var retry = _admission.RetryAfter < TimeSpan.Zero ? TimeSpan.Zero : _admission.RetryAfter;
        return (StatusCodes.Status429TooManyRequests,
            new OpenAiError($"{message} Please try again in {FormatDuration(retry)}.", UsageLimiter.Describe(kind), null, "rate_limit_exceeded"),
            retry);
    }

    /// <summary>
    /// LiteLLM's message ("Budget has been exceeded! Current cost: …, Max budget: …"); the cost counts what calls in
    /// flight have reserved, which is what refused the request when the spend alone is below the budget.
    /// </summary>
    private string BudgetMessage(LimitKind kind, BudgetUsage budget)
    {
        var (spend, reserved, max, window) = kind == LimitKind.Budget
            ? (budget.Spend, budget.Reserved, Budgets?.MaxBudget, Budgets?.BudgetDuration)
            : (budget.ModelSpend, budget.ModelReserved, Budgets?.For(Alias ?? "")?.BudgetLimit, Budgets?.For(Alias ?? "")?.TimePeriod);
        var text = new StringBuilder(kind == LimitKind.Budget ? "Budget has been exceeded! " : $"Budget has been exceeded! Model={Alias} ");
        text.Append(CultureInfo.InvariantCulture, $"Current cost: {Usd(UsdUnits.ToUsd(spend + reserved))}, Max budget: {(max is { } m ? Usd(m) : "")}");
        if (reserved > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $" ({Usd(UsdUnits.ToUsd(reserved))} of it reserved by calls in flight)");
        }
        text.Append(window is null ? "." : $". The budget resets every {window}.");
        return text.ToString();
    }

    internal static string Usd(decimal amount) => amount.ToString("0.########", CultureInfo.InvariantCulture);

    /// <summary>The key's budget and the alias asked for, for a budget refusal's message.</summary>
    public KeyBudget? Budgets { get; init; }

    public string? Alias { get; init; }

    /// <summary>OpenAI's (Go's) duration format: <c>20ms</c>, <c>1.5s</c>, <c>6m0s</c>, <c>1h0m0s</c>.</summary>
    internal static string FormatDuration(TimeSpan duration)
    {
        var ms = (long)Math.Ceiling(Math.Max(0, duration.TotalMilliseconds));
        if (ms == 0)
        {
            return "0s";
        }
        if (ms < 1000)
        {
            return ms.ToString(CultureInfo.InvariantCulture) + "ms";
        }
        var text = new StringBuilder();
        if (ms >= 3_600_000)
        {
            text.Append(CultureInfo.InvariantCulture, $"{ms / 3_600_000}h");
        }
        if (ms >= 60_000)
        {
            text.Append(CultureInfo.InvariantCulture, $"{ms / 60_000 % 60}m");
        }
        var seconds = ms % 60_000 / 1000m;
        text.Append(seconds.ToString("0.###", CultureInfo.InvariantCulture)).Append('s');
        return text.ToString();
    }
}

/// <summary>
/// An admitted request's place in the counters and its key's budget: when its call ends (however it ends), its tokens
/// are added, its parallel slot freed and its cost settled against its reservation — once. Until then, a lease counted
/// in Redis is renewed there, so that the slot and reservation of a replica that dies are freed within a lease.
/// </summary>
internal sealed class RateLimitLease(UsageLimiter limiter, Caller caller, string alias, string userKey, IReadOnlyList<LimitSubject> subjects,
    string member, bool shared, BudgetClaim? budget)
{
    private int _completed;

    public Caller Caller { get; } = caller;

    /// <summary>The alias the request asked for.</summary>
    public string Alias { get; } = alias;

    public string UserKey { get; } = userKey;

    public IReadOnlyList<LimitSubject> Subjects { get; } = subjects;

    public string Member { get; } = member;

    /// <summary>Counted in Redis (else in this replica's memory).</summary>
    public bool Shared { get; } = shared;

    public string? KeyHash => Caller.KeyHash;

    public BudgetClaim? Budget { get; } = budget;

    /// <summary>The reservation the admission made, as its store names it (null: none).</summary>
    public string? Reservation { get; } = budget?.ReservationFor(member);

    /// <summary>Whether Redis holds something of this lease that must be kept alive while its call runs.</summary>
    public bool HoldsSharedSlot => Shared && (Reservation is not null || Subjects.Any(s => s.MaxParallel > 0));

    public bool Completed => Volatile.Read(ref _completed) == 1;

    /// <param name="tokens">The call's tokens, for the token limits.</param>
    /// <param name="cost">What the call cost its key, in US dollars (null: its deployment has no price).</param>
    public void Complete(long tokens, decimal? cost)
    {
        if (Interlocked.Exchange(ref _completed, 1) == 0)
        {
            limiter.Record(this, tokens, cost);
        }
    }
}
