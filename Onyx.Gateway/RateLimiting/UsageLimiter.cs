using System.Threading.Channels;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Auth;
using Onyx.Gateway.Cluster;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Telemetry;
using StackExchange.Redis;

namespace Onyx.Gateway.RateLimiting;

/// <summary>
/// Decides whether a caller's request may go upstream: requests and tokens per rolling window and requests in
/// flight, per user and (optionally) per end user, counted in Redis across every replica. No request waits for
/// Redis longer than <see cref="RateLimitOptions.RedisTimeout"/>: a slow answer's request is decided in memory.
/// While <see cref="RedisConnectionWatch"/> says Redis is down the replica limits in memory (or refuses, when
/// fail-closed); answers that keep coming slowly tell the watch so. Each change of mode is logged once.
/// </summary>
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

    // Far below what one record script can take: it passes a subject's calls to ZADD and ZREM with Lua's unpack, which
    // fails from about 4 000 values, after the script's INCRBY (Redis does not roll a script back).
    private const int MaxRecordsPerScript = 256;
    private int _writing;
    // Full only if Redis stalls under load before the limiter falls back; a call that finds it full is counted in memory.
    private readonly Channel<UsageRecord> _records = Channel.CreateBounded<UsageRecord>(new BoundedChannelOptions(100_000) { SingleReader = true });

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
        if (watch is not null)
        {
            watch.Follow(OnRedisChanged);
        }
        metrics.ObserveRateLimitMode(() => _shared is null ? 0 : Shared ? 1 : 2);
    }

    /// <summary>Whether the counters are shared right now (false without Redis, or while it is unreachable).</summary>
    public bool Shared => _watch?.IsUp == true;

    public async ValueTask<RateLimitDecision> AdmitAsync(Caller caller, ChatRequest request, CancellationToken cancellationToken)
    {
        var subjects = Subjects(caller, request.User);
        if (subjects.Count == 0)
        {
            return RateLimitDecision.Unlimited;
        }
        // The member is the gateway's own, never the client's request id: a reused id must not replace a count.
        // It names the replica that admitted the request, for operators reading the counters.
        var member = $"{_replica}:{UniqueIds.NewId()}";
        Admission? admission = null;
        var shared = false;
        if (Shared)
        {
            try
            {
                admission = await _shared!.AdmitAsync(subjects, member, cancellationToken).WaitAsync(_options.RedisTimeout, cancellationToken);
                shared = true;
                Volatile.Write(ref _slowAnswers, 0);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                LostRedis(ex);
            }
        }
        if (admission is null)
        {
            if (_options.FailClosed && _shared is not null)
            {
                return RateLimitDecision.StoreUnavailable(subjects);
            }
            admission = _local.Admit(subjects, member);
        }

        if (!admission.Admitted)
        {
            var subject = subjects[admission.RefusedSubject];
            _metrics.RateLimited(Describe(admission.RefusedLimit), subject.Scope, request.Model);
            Log.Refused(_logger, subject.Scope, subject.Name, Describe(admission.RefusedLimit), subject.Limit(admission.RefusedLimit),
                request.Model, (long)Math.Ceiling(admission.RetryAfter.TotalMilliseconds), shared);
            return new RateLimitDecision(admission, subjects, null, _options.Window);
        }
        return new RateLimitDecision(admission, subjects, new RateLimitLease(this, subjects, member, shared), _options.Window);
    }

    /// <summary>
    /// A finished call's tokens, counted where its request was counted; never holds up the response. With Redis, a
    /// call that finds no write in flight is sent at once, in order before any later request of its client (so a
    /// client's next request sees these tokens); calls that finish while a write is in flight go together in the
    /// next script, one per user (a user's keys share a hash slot). Under load that saves Redis a round trip per
    /// request; with few calls it changes nothing.
    /// </summary>
    internal void Record(RateLimitLease lease, long tokens)
    {
        var record = new UsageRecord(lease.Subjects, lease.Member, tokens);
        if (!(lease.Shared && Shared))
        {
            _local.Record(record.Subjects, record.Member, record.Tokens);
        }
        else if (Interlocked.CompareExchange(ref _writing, 1, 0) == 0)
        {
            _ = WriteRecordsAsync([record]);
        }
        else if (!_records.Writer.TryWrite(record))
        {
            _local.Record(record.Subjects, record.Member, record.Tokens);
        }
    }

    /// <summary>The one write in flight: this batch, then whatever queued meanwhile, until the queue is empty.</summary>
    private async Task WriteRecordsAsync(List<UsageRecord> batch)
    {
        // Not on a request's path, so a write may wait longer than an admission.
        var timeout = TimeSpan.FromTicks(Math.Max(_options.RedisTimeout.Ticks, TimeSpan.FromSeconds(1).Ticks));
        while (true)
        {
            foreach (var user in batch.GroupBy(r => r.Subjects[0].Key))
            {
                var records = user.ToList();
                if (Shared)
                {
                    try
                    {
                        await _shared!.RecordAsync(records, CancellationToken.None).WaitAsync(timeout);
                        continue;
                    }
                    catch (Exception ex)
                    {
                        // Whatever went wrong, writing goes on and these calls are counted in memory.
                        if (ex is RedisException or TimeoutException)
                        {
                            LostRedis(ex);
                        }
                    }
                }
                _local.Record(records);
            }
            batch = new List<UsageRecord>();
            while (batch.Count < MaxRecordsPerScript && _records.Reader.TryRead(out var queued))
            {
                batch.Add(queued);
            }
            if (batch.Count > 0)
            {
                continue;
            }
            // A full fence: the check below must not be read before the flag is down.
            Interlocked.Exchange(ref _writing, 0);
            // A call queued between the last read and the line above would wait for the next one: take it now.
            if (!_records.Reader.TryPeek(out _) || Interlocked.CompareExchange(ref _writing, 1, 0) != 0)
            {
                return;
            }
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
            Log.RedisBack(_logger);
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
        _records.Writer.TryComplete();
        if (_watch is not null)
        {
            _watch.Unfollow(OnRedisChanged);
        }
    }

    internal static string Describe(LimitKind kind) => kind switch
    {
        LimitKind.Requests => "requests",
        LimitKind.Tokens => "tokens",
        _ => "parallel_requests",
    };

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
    }
}
