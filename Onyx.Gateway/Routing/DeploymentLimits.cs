using System.Globalization;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Model;
using StackExchange.Redis;

namespace Onyx.Gateway.Routing;

/// <summary>
/// A deployment's <c>litellm_params.rpm</c> and <c>tpm</c>, counted as LiteLLM counts them: per deployment and UTC
/// minute, a request counter bumped before each call and a token counter bumped when a call ends; a deployment whose
/// minute is full is skipped. With Redis the counters are shared by every replica (<c>INCR</c> then <c>EXPIRE</c>, in
/// one script); without it, or while Redis does not answer within <see cref="RoutingOptions.DeploymentLimitRedisTimeout"/>,
/// each replica counts alone in memory, and routing never waits on Redis for longer than that.
/// </summary>
/// <remarks>
/// Hand-written: System.Threading.RateLimiting's limiters count inside one process, and the per-user limiter's exact
/// rolling window (<c>RateLimiting/</c>) is more than LiteLLM's fixed minute, which is what a LiteLLM config means.
/// </remarks>
internal sealed partial class DeploymentLimits
{
    /// <summary>A counter outlives its minute a little, so replicas whose clocks differ by seconds still share it.</summary>
    private static readonly TimeSpan CounterLifetime = TimeSpan.FromSeconds(120);

    /// <summary>How long a replica counts in memory after Redis failed it, before asking Redis again.</summary>
    private static readonly TimeSpan RedisRetryInterval = TimeSpan.FromSeconds(1);

    // KEYS: the minute's request counter, its token counter. ARGV: rpm (0: none), tpm (0: none), the prompt's tokens,
    // the counters' lifetime in seconds. Returns 0 (admitted and counted), 1 (rpm reached) or 2 (tpm reached).
    // The token check comes first, so a request refused for tokens is not counted as a request.
    private const string AdmitScript = """
        local tpm = tonumber(ARGV[2])
        if tpm > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') + tonumber(ARGV[3]) > tpm then return 2 end
        local rpm = tonumber(ARGV[1])
        if rpm > 0 then
          local n = redis.call('INCR', KEYS[1])
          if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
          if n > rpm then return 1 end
        end
        return 0
        """;

    private readonly IConnectionMultiplexer? _redis;
    private readonly TimeProvider _time;
    private readonly TimeSpan _redisTimeout;
    private readonly ILogger<DeploymentLimits> _logger;
    private readonly Dictionary<string, MinuteCounts> _local;
    private long _redisFailedAt = -1;

    public DeploymentLimits(RoutingTable routing, IOptions<OnyxOptions> options, TimeProvider time, ILogger<DeploymentLimits> logger,
        IConnectionMultiplexer? redis = null)
    {
        _redis = redis;
        _time = time;
        _logger = logger;
        _redisTimeout = options.Value.Routing.DeploymentLimitRedisTimeout;
        _local = routing.Deployments.Where(d => d.Rpm is not null || d.Tpm is not null).ToDictionary(d => d.Id, _ => new MinuteCounts(), StringComparer.Ordinal);
    }

    /// <summary>
    /// Counts <paramref name="call"/> against <paramref name="deployment"/>'s <c>rpm</c>, or says which limit its minute
    /// has reached (null: go ahead). The prompt's tokens are counted only when the deployment has a <c>tpm</c>.
    /// </summary>
    public async ValueTask<string?> TryAdmitAsync(Deployment deployment, CallTracker call)
    {
        if (!_local.TryGetValue(deployment.Id, out var local))
        {
            return null;
        }
        var minute = Minute();
        var prompt = deployment.Tpm is null ? 0 : call.PromptTokens;
        // Counted here whatever Redis says: the count this replica falls back on when Redis stops answering.
        var verdict = local.Admit(minute, deployment.Rpm, deployment.Tpm, prompt);
        if (_redis is not null && RedisWorthAsking())
        {
            try
            {
                var keys = new RedisKey[] { Key(deployment, "rpm", minute), Key(deployment, "tpm", minute) };
                var values = new RedisValue[] { deployment.Rpm ?? 0, deployment.Tpm ?? 0, prompt, (long)CounterLifetime.TotalSeconds };
                var shared = (int)await _redis.GetDatabase().ScriptEvaluateAsync(AdmitScript, keys, values).WaitAsync(_redisTimeout, _time);
                RedisAnswered();
                verdict = (LimitVerdict)shared;
            }
            catch (Exception error) when (error is RedisException or TimeoutException)
            {
                RedisFailed(error);
            }
        }
        return verdict switch
        {
            LimitVerdict.RpmReached => $"rpm limit reached ({deployment.Rpm} requests a minute)",
            LimitVerdict.TpmReached => $"tpm limit reached ({deployment.Tpm} tokens a minute)",
            _ => null,
        };
    }

    /// <summary>Adds a finished call's tokens to <paramref name="deployment"/>'s minute (when it has a <c>tpm</c>).</summary>
    public void RecordTokens(Deployment deployment, long tokens)
    {
        if (deployment.Tpm is null || tokens <= 0 || !_local.TryGetValue(deployment.Id, out var local))
        {
            return;
        }
        var minute = Minute();
        local.AddTokens(minute, tokens);
        if (_redis is not null && RedisWorthAsking())
        {
            // Off the request's path: a lost increment under-counts one call, which the next minute forgets anyway.
            var key = Key(deployment, "tpm", minute);
            var batch = _redis.GetDatabase().CreateBatch();
            _ = batch.StringIncrementAsync(key, tokens, CommandFlags.FireAndForget);
            _ = batch.KeyExpireAsync(key, CounterLifetime, CommandFlags.FireAndForget);
            batch.Execute();
        }
    }

    /// <summary>The request counter's key for a deployment and minute (its hash tag keeps both counters on one node).</summary>
    public static RedisKey Key(Deployment deployment, string counter, long minute) =>
        $"onyx:deployment:{{{deployment.Id}}}:{counter}:{minute.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>The current UTC minute as a number (<c>yyyyMMddHHmm</c>): LiteLLM's per-minute window.</summary>
    public long Minute()
    {
        var now = _time.GetUtcNow().UtcDateTime;
        return long.Parse(now.ToString("yyyyMMddHHmm", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
    }

    private bool RedisWorthAsking()
    {
        var failedAt = Interlocked.Read(ref _redisFailedAt);
        return failedAt < 0 || _time.GetElapsedTime(failedAt) >= RedisRetryInterval;
    }

    private void RedisFailed(Exception error)
    {
        if (Interlocked.Exchange(ref _redisFailedAt, _time.GetTimestamp()) < 0)
        {
            Log.CountingInMemory(_logger, error.Message);
        }
    }

    private void RedisAnswered()
    {
        if (Interlocked.Read(ref _redisFailedAt) >= 0 && Interlocked.Exchange(ref _redisFailedAt, -1) >= 0)
        {
            Log.CountingInRedis(_logger);
        }
    }

    private enum LimitVerdict
    {
        Admitted = 0,
        RpmReached = 1,
        TpmReached = 2,
    }

    /// <summary>One deployment's counts in this replica for the current minute.</summary>
    private sealed class MinuteCounts
    {
        private readonly Lock _lock = new();
        private long _minute;
        private int _requests;
        private long _tokens;

        public LimitVerdict Admit(long minute, int? rpm, int? tpm, int prompt)
        {
            lock (_lock)
            {
                Roll(minute);
                if (tpm is { } tokenLimit && _tokens + prompt > tokenLimit)
                {
                    return LimitVerdict.TpmReached;
                }
                _requests++;
                return rpm is { } requestLimit && _requests > requestLimit ? LimitVerdict.RpmReached : LimitVerdict.Admitted;
            }
        }

        public void AddTokens(long minute, long tokens)
        {
            lock (_lock)
            {
                Roll(minute);
                _tokens += tokens;
            }
        }

        private void Roll(long minute)
        {
            if (minute != _minute)
            {
                (_minute, _requests, _tokens) = (minute, 0, 0);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1030, LogLevel.Warning, "Deployment rpm/tpm limits are counted by this replica alone for now: Redis did not answer ({Reason})")]
        public static partial void CountingInMemory(ILogger logger, string reason);

        [LoggerMessage(1031, LogLevel.Information, "Deployment rpm/tpm limits are counted in Redis again, across replicas")]
        public static partial void CountingInRedis(ILogger logger);
    }
}
