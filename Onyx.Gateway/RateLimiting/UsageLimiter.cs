using System.Collections.Concurrent;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Auth;
using Onyx.Gateway.Batching;
using Onyx.Gateway.Cluster;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Telemetry;
using StackExchange.Redis;

namespace Onyx.Gateway.RateLimiting;

/// <summary>
/// Decides whether a caller's request may go upstream: its key's budget, requests and tokens per rolling window and
/// requests in flight, per user and (optionally) per end user, counted in Redis across every replica. No request waits
/// for Redis longer than <see cref="RateLimitOptions.RedisTimeout"/>: a slow answer's request is decided in memory.
/// While <see cref="RedisConnectionWatch"/> says Redis is down the replica limits in memory (or refuses, when
/// fail-closed); answers that keep coming slowly tell the watch so. Each change of mode is logged once.
/// </summary>
/// <remarks>
/// Nothing an admission takes in Redis outlives its call. A call's end frees its slot and settles its cost in the same
/// script as its tokens. An admission that lands in Redis after its request stopped waiting (decided in memory, or its
/// client gone) is freed there as soon as its answer arrives; a record that could not be written has its slot freed
/// by a retry, and its cost settled by another, until they land (each counts once). A call in flight has its slot and
/// reservation renewed every third of <see cref="RateLimitOptions.ParallelLease"/>, so a replica that dies leaves them
/// for at most one lease.
/// </remarks>
internal sealed partial class UsageLimiter : IHealthCheck, IDisposable
{
    private readonly RedisUsageStore? _shared;
    private readonly InMemoryUsageStore _local;
    private readonly RateLimitOptions _options;
    private readonly RateLimitSettings _defaults;
    private readonly GatewayMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<UsageLimiter> _logger;
    private readonly string _replica;
    private readonly RedisConnectionWatch? _watch;
    private int _slowAnswers;
    // Ends the lease keeper. Cancelled, never disposed: the host may stop and dispose this more than once.
    private readonly CancellationTokenSource _stopping = new();

    // Far below what one record script can take: it passes a subject's calls to ZADD and ZREM with Lua's unpack, which
    // fails from about 4 000 values, after the script's INCRBY (Redis does not roll a script back).
    private const int MaxRecordsPerScript = 256;

    /// <summary>Costs waiting to be settled in Redis at most; past it a call's cost is counted in this replica only (and logged).</summary>
    private const int MaxUnsettled = 100_000;

    // Written through, by the call that ends: its tokens reach Redis before the same client's next admission can (the
    // commands share one connection, in order). Full only if Redis stalls under load before the limiter falls back;
    // a call that finds it full is counted in memory.
    private readonly BatchWriter<UsageRecord> _records;

    // Leases whose slot or reservation Redis holds while their calls run, by member: renewed until they complete.
    private readonly ConcurrentDictionary<string, RateLimitLease> _live = new(StringComparer.Ordinal);
    // Slots and reservations to free in Redis that a first try could not, with when they lapse on their own anyway.
    private readonly ConcurrentQueue<(PendingRelease Release, DateTimeOffset Lapses)> _releases = new();
    // Costs Redis has not taken yet (settlement-only records), written again until it does.
    private readonly ConcurrentQueue<UsageRecord> _unsettled = new();
    private int _unsettledCount;

    public UsageLimiter(InMemoryUsageStore local, IOptions<OnyxOptions> onyx, IOptions<LiteLlmOptions> liteLlm, GatewayMetrics metrics,
        TimeProvider time, ReplicaIdentity replica, ILogger<UsageLimiter> logger, RedisUsageStore? shared = null, RedisConnectionWatch? watch = null)
    {
        if ((shared is null) != (watch is null))
        {
            throw new ArgumentException("Limits shared through Redis follow the Redis connection's watch: give both or neither.", nameof(watch));
        }
        _replica = replica.Id;
        _shared = shared;
        _local = local;
        _options = onyx.Value.RateLimits;
        _defaults = liteLlm.Value.LiteLlmSettings.RateLimit;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _watch = watch;
        _records = BatchWriter<UsageRecord>.WriteThrough(100_000, MaxRecordsPerScript, WriteRecordsAsync);
        if (watch is not null)
        {
            watch.Follow(OnRedisChanged);
        }
        metrics.ObserveRateLimitMode(() => _shared is null ? 0 : Shared ? 1 : 2);
        if (shared is not null)
        {
            _ = KeepLeasesAsync();
        }
    }

    /// <summary>
    /// Whether the counters are shared right now: false without Redis, while it is unreachable, and while this replica
    /// is still writing what it could not write during the outage (calls that ended meanwhile still hold their slots
    /// and reservations there until then, and would refuse the users they belonged to).
    /// </summary>
    public bool Shared => _watch?.IsUp == true && Volatile.Read(ref _catchingUp) == 0;

    private int _catchingUp;

    /// <param name="estimate">
    /// An upper bound of what the call may cost its key, in US dollars, reserved against the key's budget while it
    /// runs (see the API's budget estimate).
    /// </param>
    public async ValueTask<RateLimitDecision> AdmitAsync(Caller caller, ChatRequest request, decimal estimate, CancellationToken cancellationToken)
    {
        var subjects = Subjects(caller, request.User);
        var now = _time.GetUtcNow();
        var budget = Claim(caller, request.Model, estimate, now);
        var userKey = LimitSubject.UserKeyOf(caller.UserId);
        // The member is the gateway's own, never the client's request id: a reused id must not replace a count.
        // It names the replica that admitted the request, for operators reading the counters.
        var member = $"{_replica}:{UniqueIds.NewId()}";
        if (subjects.Count == 0 && budget is null)
        {
            // Nothing to check; a key's calls still settle their cost through a lease.
            return caller.KeyHash is null
                ? RateLimitDecision.Unlimited
                : new RateLimitDecision(null, subjects, new RateLimitLease(this, caller, request.Model, userKey, subjects, member, shared: false, null), TimeSpan.Zero);
        }
        var admissionRequest = new AdmissionRequest(userKey, subjects, member, budget);
        Admission? admission = null;
        var shared = false;
        if (Shared)
        {
            var pending = _shared!.AdmitAsync(admissionRequest, cancellationToken);
            try
            {
                admission = await pending.WaitAsync(_options.RedisTimeout, cancellationToken);
                shared = true;
                Volatile.Write(ref _slowAnswers, 0);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                LostRedis(ex);
                FreeIfCounted(pending, admissionRequest, "its admission reached Redis after the request was decided in memory");
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                FreeIfCounted(pending, admissionRequest, "its client left during the admission");
                throw;
            }
        }
        if (admission is null)
        {
            if (_options.FailClosed && _shared is not null)
            {
                return RateLimitDecision.StoreUnavailable(subjects);
            }
            admission = _local.Admit(admissionRequest);
        }
        else if (budget is not null && admission.Budget is { } seen)
        {
            _local.Observe(userKey, budget.KeyHash, budget.ModelMaxBudget is null ? null : budget.Alias, seen);
        }

        if (!admission.Admitted)
        {
            if (admission.RefusedLimit is LimitKind.Budget or LimitKind.ModelBudget)
            {
                var limit = admission.RefusedLimit == LimitKind.Budget ? "budget" : "model_budget";
                _metrics.BudgetRefused(limit, request.Model);
                var used = admission.Budget ?? default;
                Log.BudgetRefused(_logger, caller.KeyName, caller.UserId, limit, request.Model,
                    UsdUnits.ToUsd(limit == "budget" ? used.Spend : used.ModelSpend), UsdUnits.ToUsd(limit == "budget" ? used.Reserved : used.ModelReserved),
                    UsdUnits.ToUsd((limit == "budget" ? budget!.MaxBudget : budget!.ModelMaxBudget) ?? 0), shared);
                return new RateLimitDecision(admission, subjects, null, _options.Window) { Budgets = caller.Budget, Alias = request.Model };
            }
            var subject = subjects[admission.RefusedSubject];
            _metrics.RateLimited(Describe(admission.RefusedLimit), subject.Scope, request.Model);
            Log.Refused(_logger, subject.Scope, subject.Name, Describe(admission.RefusedLimit), subject.Limit(admission.RefusedLimit),
                request.Model, (long)Math.Ceiling(admission.RetryAfter.TotalMilliseconds), shared);
            return new RateLimitDecision(admission, subjects, null, _options.Window);
        }
        var lease = new RateLimitLease(this, caller, request.Model, userKey, subjects, member, shared, budget);
        if (lease.HoldsSharedSlot)
        {
            _live[member] = lease;
        }
        return new RateLimitDecision(admission, subjects, lease, _options.Window);
    }

    /// <summary>
    /// The budget this request is checked against, or null when its key has none that applies: the key's
    /// <c>max_budget</c> and the alias's <c>model_max_budget</c>, with the ends of windows that would start now.
    /// </summary>
    private static BudgetClaim? Claim(Caller caller, string alias, decimal estimate, DateTimeOffset now)
    {
        if (caller.KeyHash is null || caller.Budget is not { } budget)
        {
            return null;
        }
        var model = budget.For(alias);
        if (budget.MaxBudget is null && model is null)
        {
            return null;
        }
        return new BudgetClaim(caller.KeyHash, budget.MaxBudget is { } max ? UsdUnits.From(max) : null, BudgetDurations.NextResetMs(budget.BudgetDuration, now),
            alias, model is null ? null : UsdUnits.From(model.BudgetLimit), BudgetDurations.NextResetMs(model?.TimePeriod, now),
            // Rounded up: a reservation below the call's cost would let the key's spend pass its budget by more than one call.
            (long)Math.Ceiling(Math.Max(0, estimate) * UsdUnits.PerDollar), now.ToUnixTimeMilliseconds());
    }

    /// <summary>
    /// An admission that stopped waiting (decided in memory, or its client gone) may still land in Redis: once it has,
    /// whatever it took there is freed, since no call will record it.
    /// </summary>
    private void FreeIfCounted(Task<Admission> pending, AdmissionRequest request, string why) =>
        _ = pending.ContinueWith(t =>
        {
            if (t.IsCompletedSuccessfully && t.Result.Admitted)
            {
                var release = new PendingRelease(request.UserKey, request.Subjects, request.Member, request.Budget?.KeyHash,
                    request.Budget?.ReservationFor(request.Member), why);
                if (release.Holds)
                {
                    _ = ReleaseAsync(release);
                }
            }
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    /// <summary>
    /// A finished call's tokens and cost, counted where its request was counted; never holds up the response. With Redis,
    /// a call that finds no write in flight is sent at once, in order before any later request of its client (so a
    /// client's next request sees these tokens and this cost); calls that finish while a write is in flight go together
    /// in the next script, one per user (a user's keys share a hash slot). Under load that saves Redis a round trip per
    /// request; with few calls it changes nothing. A key's cost goes to Redis even when its request was decided in
    /// memory: the key's spend is shared by every replica.
    /// </summary>
    internal void Record(RateLimitLease lease, long tokens, decimal? cost)
    {
        _live.TryRemove(lease.Member, out _);
        var settlement = SettlementOf(lease, cost);
        if (settlement is not null)
        {
            // This replica's own view, for admissions it decides alone; without Redis it is the only one.
            var local = _local.Settle(lease.UserKey, settlement);
            if (_shared is null)
            {
                Settled(lease.Caller, local);
            }
        }
        if (_shared is null)
        {
            _local.Record(lease.Subjects, lease.Member, tokens);
            return;
        }
        UsageRecord record;
        if (lease.Shared)
        {
            record = new UsageRecord(lease.Subjects, lease.Member, tokens, settlement, lease.UserKey);
        }
        else
        {
            _local.Record(lease.Subjects, lease.Member, tokens);
            if (settlement is null)
            {
                return;
            }
            record = new UsageRecord([], lease.Member, 0, settlement, lease.UserKey);
        }
        if (!Shared || !_records.TryAdd(record))
        {
            Unwritten(record);
        }
    }

    /// <summary>What the call settles against its key: its cost and its reservation; null when it has no key, or nothing to settle.</summary>
    private Settlement? SettlementOf(RateLimitLease lease, decimal? cost)
    {
        if (lease.KeyHash is not { } keyHash)
        {
            return null;
        }
        var units = cost is { } usd ? UsdUnits.From(usd) : 0;
        if (units <= 0 && lease.Reservation is null)
        {
            return null;
        }
        var now = _time.GetUtcNow();
        var budget = lease.Caller.Budget;
        var model = budget?.For(lease.Alias);
        return new Settlement(keyHash, lease.Member, Math.Max(0, units), lease.Reservation, model is null ? null : lease.Alias,
            BudgetDurations.NextResetMs(budget?.BudgetDuration, now), BudgetDurations.NextResetMs(model?.TimePeriod, now),
            budget?.SoftBudget is { } soft ? UsdUnits.From(soft) : -1, now.ToUnixTimeMilliseconds());
    }

    /// <summary>A record Redis could not take now: its tokens are counted here, its slot freed and its cost settled by retries.</summary>
    private void Unwritten(UsageRecord record)
    {
        _local.Record(record.Subjects, record.Member, record.Tokens);
        if (record.Subjects.Any(s => s.MaxParallel > 0))
        {
            _releases.Enqueue((new PendingRelease(record.UserKey, record.Subjects, record.Member, null, null, "its record could not be written"),
                TimeProvider.System.GetUtcNow() + _options.ParallelLease));
        }
        if (record.Settlement is { } settlement)
        {
            // Its reservation is released when its cost is settled, in the same script.
            if (Interlocked.Increment(ref _unsettledCount) > MaxUnsettled)
            {
                Interlocked.Decrement(ref _unsettledCount);
                Log.SettlementDropped(_logger, record.UserKey, UsdUnits.ToUsd(settlement.Cost));
                return;
            }
            _unsettled.Enqueue(new UsageRecord([], record.Member, 0, settlement, record.UserKey));
        }
    }

    /// <summary>Each user's records in one script; what Redis does not take is counted here and retried.</summary>
    private async Task WriteRecordsAsync(List<UsageRecord> batch, bool final, CancellationToken cancellationToken)
    {
        foreach (var user in batch.GroupBy(r => r.UserKey, StringComparer.Ordinal))
        {
            var records = user.ToList();
            if (!Shared || !await TryWriteAsync(records))
            {
                records.ForEach(Unwritten);
            }
        }
    }

    /// <summary>One user's records in one script; reports the settlements. False when Redis did not take them.</summary>
    private async Task<bool> TryWriteAsync(List<UsageRecord> records)
    {
        // Not on a request's path, so a write may wait longer than an admission.
        var timeout = TimeSpan.FromTicks(Math.Max(_options.RedisTimeout.Ticks, TimeSpan.FromSeconds(1).Ticks));
        try
        {
            var results = await _shared!.RecordAsync(records, CancellationToken.None).WaitAsync(timeout);
            var at = 0;
            foreach (var record in records)
            {
                if (record.Settlement is not null && at < results.Count)
                {
                    Settled(record, results[at++]);
                }
            }
            return true;
        }
        catch (Exception ex)
        {
            // Whatever went wrong, writing goes on: these calls are counted in memory and their costs retried.
            if (ex is RedisException or TimeoutException)
            {
                LostRedis(ex);
            }
            return false;
        }
    }

    private void Settled(UsageRecord record, SettleResult result)
    {
        if (result.CrossedSoftBudget)
        {
            _metrics.SoftBudgetCrossed();
            Log.SoftBudgetCrossed(_logger, record.Settlement!.KeyHash[..Math.Min(8, record.Settlement.KeyHash.Length)],
                UsdUnits.ToUsd(record.Settlement.SoftBudget), UsdUnits.ToUsd(result.Spend));
        }
    }

    private void Settled(Caller caller, SettleResult result)
    {
        if (result.CrossedSoftBudget && caller.Budget?.SoftBudget is { } soft && caller.KeyHash is { } hash)
        {
            _metrics.SoftBudgetCrossed();
            Log.SoftBudgetCrossed(_logger, hash[..Math.Min(8, hash.Length)], soft, UsdUnits.ToUsd(result.Spend));
        }
    }

    /// <summary>
    /// Keeps what calls in flight hold in Redis alive, and retries what could not be freed or settled. Runs on the real
    /// clock, not the injected one: the leases it renews lapse on Redis's clock.
    /// </summary>
    private async Task KeepLeasesAsync()
    {
        var clock = TimeProvider.System;
        var renewEvery = _options.ParallelLease / 3;
        var lastRenewal = clock.GetTimestamp();
        var stopping = _stopping.Token;
        // Frees and settlements Redis could not take are retried once a second; leases are renewed every third of their life.
        var tick = TimeSpan.FromSeconds(1);
        using var timer = new PeriodicTimer(tick < renewEvery ? tick : renewEvery, clock);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping))
            {
                if (!Shared)
                {
                    continue;
                }
                try
                {
                    if (clock.GetElapsedTime(lastRenewal) >= renewEvery - TimeSpan.FromMilliseconds(50))
                    {
                        lastRenewal = clock.GetTimestamp();
                        await RenewAsync();
                    }
                    await RetryReleasesAsync();
                    await RetrySettlementsAsync();
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // Whatever went wrong (Redis's connection disposed at shutdown, say), the next tick tries again.
                    Log.KeeperFailed(_logger, ex);
                }
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            // Shutting down.
        }
    }

    private async Task RenewAsync()
    {
        var timeout = TimeSpan.FromTicks(Math.Max(_options.RedisTimeout.Ticks, TimeSpan.FromSeconds(1).Ticks));
        foreach (var user in _live.Values.Where(l => !l.Completed).GroupBy(l => l.UserKey, StringComparer.Ordinal))
        {
            try
            {
                await _shared!.RenewAsync(user.ToList()).WaitAsync(timeout);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                Log.RenewFailed(_logger, user.Count(), ex.Message);
            }
        }
    }

    private async Task RetryReleasesAsync()
    {
        for (var count = _releases.Count; count > 0 && _releases.TryDequeue(out var queued); count--)
        {
            if (queued.Lapses > TimeProvider.System.GetUtcNow())
            {
                await ReleaseAsync(queued.Release, queued.Lapses);
            }
        }
    }

    /// <summary>Frees in Redis what a call that will not be recorded there took; tried again later if Redis does not answer.</summary>
    private async Task ReleaseAsync(PendingRelease release, DateTimeOffset? lapses = null)
    {
        try
        {
            await _shared!.ReleaseAsync(release.UserKey, release.Subjects, release.Member, release.KeyHash, release.Reservation)
                .WaitAsync(TimeSpan.FromTicks(Math.Max(_options.RedisTimeout.Ticks, TimeSpan.FromSeconds(1).Ticks)));
            Log.Released(_logger, release.Member, release.Why);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            _releases.Enqueue((release, lapses ?? TimeProvider.System.GetUtcNow() + _options.ParallelLease));
        }
    }

    private async Task RetrySettlementsAsync()
    {
        var batch = new List<UsageRecord>();
        while (batch.Count < MaxRecordsPerScript && _unsettled.TryDequeue(out var record))
        {
            Interlocked.Decrement(ref _unsettledCount);
            batch.Add(record);
        }
        if (batch.Count == 0)
        {
            return;
        }
        var failed = 0;
        foreach (var user in batch.GroupBy(r => r.UserKey, StringComparer.Ordinal))
        {
            var records = user.ToList();
            if (!await TryWriteAsync(records))
            {
                // Only this user's script failed: only its calls are tried again (a settlement counts once however often it is sent).
                failed += records.Count;
                foreach (var record in records)
                {
                    Interlocked.Increment(ref _unsettledCount);
                    _unsettled.Enqueue(record);
                }
            }
        }
        if (failed > 0)
        {
            Log.SettleFailed(_logger, failed);
        }
    }

    /// <summary>A key's budget as the shared store (or, without Redis, this replica) holds it.</summary>
    public async Task<BudgetState> ReadBudgetAsync(string userId, string keyHash, CancellationToken cancellationToken)
    {
        var userKey = LimitSubject.UserKeyOf(userId);
        return _shared is null
            ? _local.ReadBudget(userKey, keyHash)
            : await _shared.ReadBudgetAsync(userKey, keyHash, cancellationToken);
    }

    /// <summary>The key's budget durations changed: its windows start again at its next admission, keeping their spend.</summary>
    public async Task ResetBudgetWindowsAsync(string userId, string keyHash, IEnumerable<string> aliases, CancellationToken cancellationToken)
    {
        var userKey = LimitSubject.UserKeyOf(userId);
        var all = aliases.ToList();
        _local.ResetWindows(userKey, keyHash, all);
        if (_shared is not null)
        {
            await _shared.ResetWindowsAsync(userKey, keyHash, all, cancellationToken);
        }
    }

    public async Task DeleteBudgetAsync(string userId, string keyHash, CancellationToken cancellationToken)
    {
        var userKey = LimitSubject.UserKeyOf(userId);
        _local.DeleteBudget(userKey, keyHash);
        if (_shared is not null)
        {
            await _shared.DeleteBudgetAsync(userKey, keyHash, cancellationToken);
        }
    }

    private List<LimitSubject> Subjects(Caller caller, string? endUser)
    {
        var subjects = new List<LimitSubject>(2);
        if (!_options.Enabled)
        {
            return subjects;
        }
        var user = LimitSubject.User(caller.UserId,
            caller.RpmLimit ?? _defaults.Rpm ?? RateLimitSettings.DefaultRpm,
            caller.TpmLimit ?? _defaults.Tpm ?? RateLimitSettings.DefaultTpm,
            caller.MaxParallelRequests ?? _defaults.MaxParallelRequests ?? 0);
        if (user.Rpm > 0 || user.Tpm > 0 || user.MaxParallel > 0)
        {
            subjects.Add(user);
        }
        if (endUser is not null && (_options.EndUser.Rpm > 0 || _options.EndUser.Tpm > 0))
        {
            subjects.Add(user.EndUser(endUser, _options.EndUser.Rpm ?? 0, _options.EndUser.Tpm ?? 0));
        }
        return subjects;
    }

    /// <summary>
    /// A lost connection stops the shared mode at once (the watch's call); slow answers only when they keep coming,
    /// and then for every feature: a Redis too slow for the limits' 50 ms is not one to build on elsewhere either.
    /// </summary>
    private void LostRedis(Exception error)
    {
        if (error is RedisConnectionException)
        {
            _watch!.CallFailed("rate limits", error);
            return;
        }
        var slow = Interlocked.Increment(ref _slowAnswers);
        if (slow < _options.SlowAnswersToFallBack)
        {
            _watch!.CallFailed("rate limits", error);
            return;
        }
        _watch!.ReportDown("rate limits", string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{slow} answers in a row slower than {_options.RedisTimeout.TotalMilliseconds:0} ms (last: {RedisConnectionWatch.Describe(error)})"));
    }

    /// <summary>The mode follows the watch; each change is logged once.</summary>
    private void OnRedisChanged(RedisConnectionState state)
    {
        Volatile.Write(ref _slowAnswers, 0);
        if (state.Up)
        {
            if (Interlocked.Exchange(ref _catchingUp, 1) == 0)
            {
                _ = CatchUpAsync();
            }
        }
        else if (_options.FailClosed)
        {
            Log.RedisLostFailClosed(_logger, state.Reason ?? "unknown");
        }
        else
        {
            Log.RedisLost(_logger, state.Reason ?? "unknown");
        }
    }

    /// <summary>
    /// Redis is back: first what calls that ended during the outage still hold there is freed and settled, then this
    /// replica counts in Redis again. Admissions meanwhile are decided in memory, as during the outage.
    /// </summary>
    private async Task CatchUpAsync()
    {
        try
        {
            for (var round = 0; round < 10 && _watch?.IsUp == true && (!_releases.IsEmpty || !_unsettled.IsEmpty); round++)
            {
                await RetryReleasesAsync();
                await RetrySettlementsAsync();
            }
        }
        catch (Exception ex)
        {
            // What is left is the lease keeper's to retry.
            Log.KeeperFailed(_logger, ex);
        }
        finally
        {
            Volatile.Write(ref _catchingUp, 0);
        }
        if (_watch?.IsUp == true)
        {
            Log.RedisBack(_logger);
        }
    }

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var data = new Dictionary<string, object> { ["window"] = _options.Window.ToString() };
        var result = !_options.Enabled ? HealthCheckResult.Healthy("Rate limits are off (Onyx:RateLimits:Enabled=false).", data)
            : _shared is null ? HealthCheckResult.Healthy("Limits are counted in this process (no Redis: right for a single replica).", data)
            : Shared ? HealthCheckResult.Healthy("Limits are shared by every replica through Redis.", data)
            : HealthCheckResult.Degraded(_options.FailClosed
                ? $"Redis is unreachable ({_watch!.State.Reason}): requests that need a rate-limit decision are refused (fail-closed)."
                : $"Redis is unreachable ({_watch!.State.Reason}): each replica limits on its own, in memory, until it is back.", data: data);
        return Task.FromResult(result);
    }

    public void Dispose()
    {
        // The writer finishes what is queued, then stops.
        _records.Complete();
        _stopping.Cancel();
        if (_watch is not null)
        {
            _watch.Unfollow(OnRedisChanged);
        }
    }

    internal static string Describe(LimitKind kind) => kind switch
    {
        LimitKind.Requests => "requests",
        LimitKind.Tokens => "tokens",
        LimitKind.Budget => "budget",
        LimitKind.ModelBudget => "model_budget",
        _ => "parallel_requests",
    };

    /// <summary>What an admission took in Redis that no call will free there: its in-flight entries and its reservation.</summary>
    private sealed record PendingRelease(string UserKey, IReadOnlyList<LimitSubject> Subjects, string Member, string? KeyHash, string? Reservation, string Why)
    {
        public bool Holds => Reservation is not null || Subjects.Any(s => s.MaxParallel > 0);
    }

    private static partial class Log
    {
        [LoggerMessage(5001, LogLevel.Information, "Rate limit: refused {Scope} {Subject} on {Limit} (limit {Max}) for model {Alias}; retry after {RetryAfterMs} ms (shared: {Shared})")]
        public static partial void Refused(ILogger logger, string scope, string subject, string limit, long max, string alias, long retryAfterMs, bool shared);

        [LoggerMessage(5002, LogLevel.Warning, "Redis is unreachable for rate limits ({Error}): each replica now limits in memory until Redis is back")]
        public static partial void RedisLost(ILogger logger, string error);

        [LoggerMessage(5003, LogLevel.Warning, "Redis is unreachable for rate limits ({Error}): requests are refused until Redis is back (fail-closed)")]
        public static partial void RedisLostFailClosed(ILogger logger, string error);

        [LoggerMessage(5004, LogLevel.Information, "Redis is back: rate limits are shared by every replica again")]
        public static partial void RedisBack(ILogger logger);

        [LoggerMessage(5010, LogLevel.Information, "Budget: refused key {KeyName} of user {UserId} on its {Limit} for model {Alias}: {SpendUsd} USD spent and {ReservedUsd} USD reserved by calls in flight reach {MaxUsd} USD (shared: {Shared})")]
        public static partial void BudgetRefused(ILogger logger, string? keyName, string userId, string limit, string alias, decimal spendUsd, decimal reservedUsd, decimal maxUsd, bool shared);

        [LoggerMessage(5011, LogLevel.Warning, "Soft budget: the key with token {TokenPrefix}… crossed its soft budget of {SoftBudgetUsd} USD ({SpendUsd} USD spent in its window); it is still served")]
        public static partial void SoftBudgetCrossed(ILogger logger, string tokenPrefix, decimal softBudgetUsd, decimal spendUsd);

        [LoggerMessage(5012, LogLevel.Information, "Freed the parallel slot and budget reservation of request {Member} in Redis: {Why}")]
        public static partial void Released(ILogger logger, string member, string why);

        [LoggerMessage(5013, LogLevel.Warning, "Could not settle the cost of {Calls} calls in Redis; they are kept and written again (each counts once)")]
        public static partial void SettleFailed(ILogger logger, int calls);

        [LoggerMessage(5014, LogLevel.Warning, "Could not renew the leases of {Calls} calls in flight in Redis ({Error}); they lapse unless a later renewal lands")]
        public static partial void RenewFailed(ILogger logger, int calls, string error);

        [LoggerMessage(5016, LogLevel.Warning, "Renewing leases and retrying frees and costs in Redis failed; tried again on the next tick")]
        public static partial void KeeperFailed(ILogger logger, Exception exception);

        [LoggerMessage(5015, LogLevel.Error, "Too many costs wait for Redis: {CostUsd} USD of a call of {User} is counted by this replica only")]
        public static partial void SettlementDropped(ILogger logger, string user, decimal costUsd);
    }
}
