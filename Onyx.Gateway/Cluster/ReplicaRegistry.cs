using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Onyx.Gateway.Cluster;

/// <summary>
/// Registers this replica in the shared Redis (hash <see cref="Key"/>: replica id → start time), so operators
/// and tests can see every replica shares one Redis; the shared state of later features lives beside it.
/// While Redis is unreachable the replica serves on its own; it registers again as soon as Redis answers (a
/// restarted Redis may have lost the hash).
/// </summary>
internal sealed partial class ReplicaRegistry : IHostedService, IHealthCheck
{
    public const string Key = "onyx:replicas";

    private readonly IConnectionMultiplexer _redis;
    private readonly RedisConnectionWatch _watch;
    private readonly ReplicaIdentity _identity;
    private readonly TimeProvider _time;
    private readonly TimeSpan _timeout;
    private readonly ILogger<ReplicaRegistry> _logger;

    public ReplicaRegistry(IConnectionMultiplexer redis, RedisConnectionWatch watch, ReplicaIdentity identity, IOptions<RedisWatchOptions> options,
        TimeProvider time, ILogger<ReplicaRegistry> logger)
    {
        _redis = redis;
        _watch = watch;
        _identity = identity;
        _time = time;
        // A health probe must not wait on a stalled Redis longer than the watch's own ping does.
        _timeout = options.Value.PingTimeout;
        _logger = logger;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _watch.Follow(OnRedisChanged);
        if (_watch.IsUp)
        {
            await RegisterAsync();
        }
        else
        {
            Log.RegistrationFailed(_logger, _identity.Id, _watch.State.Reason ?? "Redis is unreachable");
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _watch.Unfollow(OnRedisChanged);
        if (!_watch.IsUp)
        {
            return;
        }
        try
        {
            await _redis.GetDatabase().HashDeleteAsync(Key, _identity.Id).WaitAsync(_timeout, _time, cancellationToken);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or OperationCanceledException or ObjectDisposedException)
        {
            // Shutting down (the connection may already be closed): nothing more to do.
        }
    }

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var data = new Dictionary<string, object> { ["replica"] = _identity.Id };
        if (_watch.State is { Up: false } down)
        {
            return HealthCheckResult.Degraded($"Not registered: Redis is unreachable ({down.Reason}); this replica serves on its own.", data: data);
        }
        try
        {
            var database = _redis.GetDatabase();
            var registered = database.HashSetAsync(Key, _identity.Id, _time.GetUtcNow().ToString("O"), When.NotExists);
            var count = database.HashLengthAsync(Key);
            await Task.WhenAll(registered, count).WaitAsync(_timeout, _time, cancellationToken);
            data["replicas"] = count.Result;
            return HealthCheckResult.Healthy("Registered in Redis.", data);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            _watch.CallFailed("replica registry", ex);
            return HealthCheckResult.Degraded($"Not registered: Redis did not answer ({RedisConnectionWatch.Describe(ex)}); this replica serves on its own.", ex, data);
        }
    }

    private void OnRedisChanged(RedisConnectionState state)
    {
        if (state.Up)
        {
            _ = RegisterAsync();
        }
    }

    private async Task RegisterAsync()
    {
        try
        {
            await _redis.GetDatabase().HashSetAsync(Key, _identity.Id, _time.GetUtcNow().ToString("O")).WaitAsync(_timeout, _time);
            Log.Registered(_logger, _identity.Id);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // The next health check, or the next time Redis is back, registers again.
            _watch.CallFailed("replica registry", ex);
            Log.RegistrationFailed(_logger, _identity.Id, ex.Message);
        }
        catch (ObjectDisposedException)
        {
            // Shutting down.
        }
    }

    private static partial class Log
    {
        [LoggerMessage(4001, LogLevel.Information, "Replica {Replica} registered in Redis")]
        public static partial void Registered(ILogger logger, string replica);

        [LoggerMessage(4002, LogLevel.Warning, "Replica {Replica} could not register in Redis: {Error}")]
        public static partial void RegistrationFailed(ILogger logger, string replica, string error);
    }
}
