using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;

namespace Onyx.Gateway.RateLimiting;

/// <summary>
/// The same rolling windows, budgets and reservations as <see cref="RedisUsageStore"/>, in this process: the store of a
/// gateway without Redis, and every replica's fallback while Redis is unreachable. Timed by the <see cref="TimeProvider"/>.
/// </summary>
/// <remarks>
/// Its in-flight entries and reservations have no lease: the process that made them frees them when their calls end,
/// and takes them with it if it dies; a lease here would only free a long stream's slot while it still runs.
/// </remarks>
internal sealed class InMemoryUsageStore(IOptions<OnyxOptions> options, TimeProvider time) : IUsageStore
{
    /// <summary>Subjects whose windows emptied are dropped every this many admissions.</summary>
    private const int SweepEvery = 4096;

    private static readonly TimeSpan SettledMemory = TimeSpan.FromMinutes(1);

    private readonly RateLimitOptions _options = options.Value.RateLimits;
    private readonly Dictionary<string, CountWindow> _windows = new(StringComparer.Ordinal);
    private readonly Dictionary<string, KeyBudget> _budgets = new(StringComparer.Ordinal);
    // Calls settled in the last SettledMemory, oldest first: this process settles each call once, so this only guards
    // a caller that writes a settlement twice, and it is kept short.
    private readonly HashSet<string> _settled = new(StringComparer.Ordinal);
    private readonly Queue<(string Call, DateTimeOffset At)> _settledOrder = new();
    // One lock for all subjects: a request's subjects (user and end user) and its key's budget are checked and counted
    // together, and the critical section is a few queue operations.
    private readonly Lock _lock = new();
    private int _admissions;

    public Task<Admission> AdmitAsync(AdmissionRequest request, CancellationToken cancellationToken) => Task.FromResult(Admit(request));

    public Task<IReadOnlyList<SettleResult>> RecordAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken)
    {
        var results = new List<SettleResult>();
        foreach (var record in records)
        {
            Record(record.Subjects, record.Member, record.Tokens);
            if (record.Settlement is { } settlement)
            {
                results.Add(Settle(record.UserKey, settlement));
            }
        }
        return Task.FromResult<IReadOnlyList<SettleResult>>(results);
    }

    public void Record(IEnumerable<UsageRecord> records)
    {
        foreach (var record in records)
        {
            Record(record.Subjects, record.Member, record.Tokens);
        }
    }

    public Admission Admit(IReadOnlyList<LimitSubject> subjects, string member) => Admit(new AdmissionRequest(subjects[0].UserKey, subjects, member));

    public Admission Admit(AdmissionRequest request)
    {
        var subjects = request.Subjects;
        var now = time.GetUtcNow();
        var window = _options.Window;
        var usage = new SubjectUsage[subjects.Count];
        int? refusedSubject = null;
        var refusedLimit = LimitKind.Requests;
        var retry = TimeSpan.Zero;
        lock (_lock)
        {
            if (++_admissions % SweepEvery == 0)
            {
                Sweep(now);
            }
            KeyBudget? budget = null;
            SpendWindow? model = null;
            if (request.Budget is { } claim)
            {
                budget = Budget(request.UserKey, claim.KeyHash);
                budget.Roll(claim.Now, claim.KeyNextReset);
                if (claim.ModelMaxBudget is not null)
                {
                    model = budget.Model(claim.Alias);
                    model.Roll(claim.Now, claim.ModelNextReset);
                }
                if (claim.MaxBudget is { } max && budget.Spend + budget.Reserved >= max)
                {
                    (refusedSubject, refusedLimit) = (-1, LimitKind.Budget);
                }
                else if (claim.ModelMaxBudget is { } modelMax && model!.Spend + model.Reserved >= modelMax)
                {
                    (refusedSubject, refusedLimit) = (-1, LimitKind.ModelBudget);
                }
            }
            var windows = new CountWindow[subjects.Count];
            for (var i = 0; i < subjects.Count; i++)
            {
                var subject = subjects[i];
                var w = windows[i] = Get(subject.Key);
                w.Expire(now - window);
                usage[i] = new SubjectUsage(w.Requests.Count, w.Requests.TryPeek(out var oldest) ? oldest + window - now : TimeSpan.Zero,
                    w.TokenSum, w.Tokens.TryPeek(out var oldestTokens) ? oldestTokens.At + window - now : TimeSpan.Zero);
                if (refusedSubject is not null)
                {
                    continue;
                }
                if (subject.Rpm > 0 && w.Requests.Count >= subject.Rpm)
                {
                    (refusedSubject, refusedLimit) = (i, LimitKind.Requests);
                    retry = w.Requests.ElementAt((int)(w.Requests.Count - subject.Rpm)) + window - now;
                }
                else if (subject.Tpm > 0 && w.TokenSum >= subject.Tpm)
                {
                    (refusedSubject, refusedLimit) = (i, LimitKind.Tokens);
                    var left = w.TokenSum;
                    foreach (var entry in w.Tokens)
                    {
                        left -= entry.Count;
                        if (left < subject.Tpm)
                        {
                            retry = entry.At + window - now;
                            break;
                        }
                    }
                }
                else if (subject.MaxParallel > 0 && w.InFlight.Count >= subject.MaxParallel)
                {
                    (refusedSubject, refusedLimit, retry) = (i, LimitKind.Parallel, TimeSpan.FromSeconds(1));
                }
            }
            if (refusedSubject is { } refused)
            {
                return Admission.Refuse(refused, refusedLimit, retry, usage) with { Budget = budget?.Usage(model) };
            }
            for (var i = 0; i < subjects.Count; i++)
            {
                windows[i].Requests.Enqueue(now);
                if (subjects[i].MaxParallel > 0)
                {
                    windows[i].InFlight.Add(request.Member);
                }
                usage[i] = usage[i] with
                {
                    Requests = usage[i].Requests + 1,
                    RequestsReset = usage[i].Requests == 0 ? window : usage[i].RequestsReset,
                };
            }
            if (budget is not null)
            {
                var reserved = request.Budget!;
                budget.Reserved += reserved.Estimate;
                if (model is not null)
                {
                    model.Reserved += reserved.Estimate;
                }
                budget.Reservations[reserved.ReservationFor(request.Member)] = (reserved.Estimate, model is null ? null : reserved.Alias);
            }
            return Admission.Admit(usage) with { Budget = budget?.Usage(model) };
        }
    }

    public void Record(IReadOnlyList<LimitSubject> subjects, string member, long tokens)
    {
        var now = time.GetUtcNow();
        lock (_lock)
        {
            foreach (var subject in subjects)
            {
                var w = Get(subject.Key);
                if (tokens > 0)
                {
                    w.Tokens.Enqueue((now, tokens));
                    w.TokenSum += tokens;
                }
                w.InFlight.Remove(member);
            }
        }
    }

    /// <summary>Releases the call's reservation (if this store holds it) and adds its cost to the key's spend — once per call.</summary>
    public SettleResult Settle(string userKey, Settlement settlement)
    {
        lock (_lock)
        {
            var budget = Budget(userKey, settlement.KeyHash);
            var now = time.GetUtcNow();
            while (_settledOrder.TryPeek(out var oldest) && oldest.At <= now - SettledMemory)
            {
                _settled.Remove(_settledOrder.Dequeue().Call);
            }
            if (!_settled.Add(settlement.CallId))
            {
                return new SettleResult(false, false, budget.Spend);
            }
            _settledOrder.Enqueue((settlement.CallId, now));
            if (settlement.Reservation is { } reservation)
            {
                budget.Release(reservation);
            }
            budget.Roll(settlement.Now, settlement.KeyNextReset);
            var before = budget.Spend;
            budget.Spend += settlement.Cost;
            if (settlement.ModelAlias is { } alias)
            {
                var model = budget.Model(alias);
                model.Roll(settlement.Now, settlement.ModelNextReset);
                model.Spend += settlement.Cost;
            }
            var crossed = settlement.SoftBudget >= 0 && before < settlement.SoftBudget && budget.Spend >= settlement.SoftBudget;
            return new SettleResult(true, crossed, budget.Spend);
        }
    }

    /// <summary>Gives a reservation back (an admission whose call will not be settled here).</summary>
    public void Release(string userKey, string keyHash, string reservation)
    {
        lock (_lock)
        {
            Budget(userKey, keyHash).Release(reservation);
        }
    }

    /// <summary>
    /// What Redis said of the key's spend at its last shared admission: while Redis is unreachable, this replica limits
    /// the key from there on, not from what it alone has seen.
    /// </summary>
    /// <param name="alias">The alias whose budget the admission checked too, or null.</param>
    public void Observe(string userKey, string keyHash, string? alias, BudgetUsage shared)
    {
        lock (_lock)
        {
            var budget = Budget(userKey, keyHash);
            (budget.Spend, budget.ResetAt) = (shared.Spend, shared.ResetAt);
            if (alias is not null)
            {
                var model = budget.Model(alias);
                (model.Spend, model.ResetAt) = (shared.ModelSpend, shared.ModelResetAt);
            }
        }
    }

    public BudgetState ReadBudget(string userKey, string keyHash)
    {
        lock (_lock)
        {
            var budget = Budget(userKey, keyHash);
            return new BudgetState(budget.Spend, budget.Reserved, budget.ResetAt,
                budget.Models.ToDictionary(m => m.Key, m => new ModelBudgetState(m.Value.Spend, m.Value.Reserved, m.Value.ResetAt), StringComparer.Ordinal));
        }
    }

    public void ResetWindows(string userKey, string keyHash, IEnumerable<string> aliases)
    {
        lock (_lock)
        {
            var budget = Budget(userKey, keyHash);
            budget.ResetAt = 0;
            foreach (var alias in aliases)
            {
                budget.Model(alias).ResetAt = 0;
            }
        }
    }

    public void DeleteBudget(string userKey, string keyHash)
    {
        lock (_lock)
        {
            _budgets.Remove(RedisUsageStore.BudgetKey(userKey, keyHash));
        }
    }

    private KeyBudget Budget(string userKey, string keyHash)
    {
        var key = RedisUsageStore.BudgetKey(userKey, keyHash);
        if (!_budgets.TryGetValue(key, out var budget))
        {
            _budgets[key] = budget = new KeyBudget();
        }
        return budget;
    }

    private CountWindow Get(string key)
    {
        if (!_windows.TryGetValue(key, out var window))
        {
            _windows[key] = window = new CountWindow();
        }
        return window;
    }

    private void Sweep(DateTimeOffset now)
    {
        foreach (var (key, w) in _windows)
        {
            w.Expire(now - _options.Window);
            if (w.Requests.Count == 0 && w.Tokens.Count == 0 && w.InFlight.Count == 0)
            {
                _windows.Remove(key);
            }
        }
    }

    private sealed class CountWindow
    {
        public Queue<DateTimeOffset> Requests { get; } = new();

        public Queue<(DateTimeOffset At, long Count)> Tokens { get; } = new();

        public long TokenSum { get; set; }

        public HashSet<string> InFlight { get; } = new(StringComparer.Ordinal);

        /// <summary>Drops what left the window (at or before <paramref name="edge"/>).</summary>
        public void Expire(DateTimeOffset edge)
        {
            while (Requests.TryPeek(out var at) && at <= edge)
            {
                Requests.Dequeue();
            }
            while (Tokens.TryPeek(out var entry) && entry.At <= edge)
            {
                TokenSum -= Tokens.Dequeue().Count;
            }
        }
    }

    /// <summary>A window of spend: the key's own, or one alias's within it (the same rules as the Redis scripts' <c>roll</c>).</summary>
    private class SpendWindow
    {
        public long Spend { get; set; }

        public long Reserved { get; set; }

        public long ResetAt { get; set; }

        /// <summary>A window with no end yet gets one and keeps its spend; a window that has ended starts again from 0.</summary>
        public void Roll(long now, long nextReset)
        {
            if (nextReset <= 0)
            {
                ResetAt = 0;
            }
            else if (ResetAt == 0)
            {
                ResetAt = nextReset;
            }
            else if (now >= ResetAt)
            {
                (Spend, ResetAt) = (0, nextReset);
            }
        }
    }

    private sealed class KeyBudget : SpendWindow
    {
        public Dictionary<string, SpendWindow> Models { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, (long Amount, string? Alias)> Reservations { get; } = new(StringComparer.Ordinal);

        public SpendWindow Model(string alias)
        {
            if (!Models.TryGetValue(alias, out var model))
            {
                Models[alias] = model = new SpendWindow();
            }
            return model;
        }

        public void Release(string reservation)
        {
            if (Reservations.Remove(reservation, out var held))
            {
                Reserved -= held.Amount;
                if (held.Alias is { } alias)
                {
                    Model(alias).Reserved -= held.Amount;
                }
            }
        }

        public BudgetUsage Usage(SpendWindow? model) =>
            new(Spend, Reserved, ResetAt, model?.Spend ?? 0, model?.Reserved ?? 0, model?.ResetAt ?? 0);
    }
}
