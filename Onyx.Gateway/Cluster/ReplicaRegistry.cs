using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Onyx.Gateway.Cluster;

/// <summary>
/// Registers this replica in the shared Redis (hash <see cref="Key"/>: replica id → start time), so operators
/// and tests can see every replica shares one Redis; the shared state of later features lives beside it.
/// While Redis is unreachable the replica serves on its own; it registers again as soon as Redis answers (a
/// restarted Redis may have lost the hash). Every <see cref="HeartbeatInterval"/> it also writes when it was last
/// seen (hash <see cref="SeenKey"/>), so a replica that died without deregistering stops counting as live.
/// </summary>
internal sealed partial class ReplicaRegistry : IHostedService, IHealthCheck
{
    public const string Key = "onyx:replicas";

    /// <summary>Replica id → when it last wrote its heartbeat (unix milliseconds).</summary>
    public const string SeenKey = "onyx:replicas:seen";

    public static readonly TimeSpan HeartbeatInterval = TimeSpan.FromSeconds(10);

    /// <summary>A replica is live while its last heartbeat is younger than this (three missed beats).</summary>
    public static readonly TimeSpan LiveWithin = 3 * HeartbeatInterval;

    /// <summary>A replica not seen for this long is forgotten by the next listing.</summary>
    private static readonly TimeSpan ForgetAfter = TimeSpan.FromDays(1);

    private readonly IConnectionMultiplexer _redis;
    private readonly RedisConnectionWatch _watch;
    private readonly ReplicaIdentity _identity;
    private readonly TimeProvider _time;
    private readonly TimeSpan _timeout;
    private readonly ILogger<ReplicaRegistry> _logger;
    private ITimer? _heartbeat;

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
        _heartbeat = _time.CreateTimer(_ => _ = BeatAsync(), null, HeartbeatInterval, HeartbeatInterval);
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
        if (_heartbeat is { } heartbeat)
        {
            await heartbeat.DisposeAsync();
        }
        if (!_watch.IsUp)
        {
            return;
        }
        try
        {
            var database = _redis.GetDatabase();
            await Task.WhenAll(database.HashDeleteAsync(Key, _identity.Id), database.HashDeleteAsync(SeenKey, _identity.Id))
                .WaitAsync(_timeout, _time, cancellationToken);
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

    /// <summary>
    /// Every replica that registered, with its start and its last heartbeat, this one first. Replicas not seen for a
    /// day are forgotten here (a replica that crashed never deregisters).
    /// </summary>
    /// <exception cref="RedisException">Redis is unreachable or failed.</exception>
    /// <exception cref="TimeoutException">No answer within the ping timeout.</exception>
    public async Task<IReadOnlyList<ReplicaInfo>> ListAsync(CancellationToken cancellationToken)
    {
        var database = _redis.GetDatabase();
        var registered = database.HashGetAllAsync(Key);
        var seen = database.HashGetAllAsync(SeenKey);
        await Task.WhenAll(registered, seen).WaitAsync(_timeout, _time, cancellationToken);
        var now = _time.GetUtcNow();
        var lastSeen = seen.Result.ToDictionary(e => e.Name.ToString(),
            e => long.TryParse(e.Value.ToString(), System.Globalization.CultureInfo.InvariantCulture, out var ms) ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : (DateTimeOffset?)null);
        var started = registered.Result.ToDictionary(e => e.Name.ToString(),
            e => DateTimeOffset.TryParse(e.Value.ToString(), System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.RoundtripKind, out var at) ? at : (DateTimeOffset?)null);
        var replicas = new List<ReplicaInfo>();
        var forgotten = new List<RedisValue>();
        foreach (var id in started.Keys.Union(lastSeen.Keys))
        {
            var seenAt = lastSeen.GetValueOrDefault(id);
            var startedAt = started.GetValueOrDefault(id);
            var self = id == _identity.Id;
            if (!self && (seenAt ?? startedAt) is { } last && now - last > ForgetAfter)
            {
                forgotten.Add(id);
                continue;
            }
            // This replica is live by definition; the others by a recent heartbeat.
            var live = self || seenAt is { } beat && now - beat < LiveWithin;
            replicas.Add(new ReplicaInfo(id, startedAt, seenAt, live, self));
        }
        if (forgotten.Count > 0)
        {
            _ = Task.WhenAll(database.HashDeleteAsync(Key, [.. forgotten]), database.HashDeleteAsync(SeenKey, [.. forgotten]));
        }
        return [.. replicas.OrderByDescending(r => r.IsThisReplica).ThenByDescending(r => r.Live).ThenBy(r => r.Id, StringComparer.Ordinal)];
    }

    private async Task BeatAsync()
    {
        if (!_watch.IsUp)
        {
            return;
        }
        try
        {
            await _redis.GetDatabase().HashSetAsync(SeenKey, _identity.Id, _time.GetUtcNow().ToUnixTimeMilliseconds()).WaitAsync(_timeout, _time);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // The watch hears of it; the next beat tries again.
            _watch.CallFailed("replica registry", ex);
        }
        catch (ObjectDisposedException)
        {
            // Shutting down.
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
            var database = _redis.GetDatabase();
            var now = _time.GetUtcNow();
            await Task.WhenAll(database.HashSetAsync(Key, _identity.Id, now.ToString("O")), database.HashSetAsync(SeenKey, _identity.Id, now.ToUnixTimeMilliseconds()))
                .WaitAsync(_timeout, _time);
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

/// <summary>A replica as the registry knows it: when it started, when it last wrote its heartbeat, whether that is recent.</summary>
internal sealed record ReplicaInfo(string Id, DateTimeOffset? StartedAt, DateTimeOffset? LastSeen, bool Live, bool IsThisReplica);
