using System.Globalization;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Cluster;
using Onyx.Gateway.Configuration;
using StackExchange.Redis;

namespace Onyx.Gateway.Resilience;

/// <summary>
/// Makes the breakers cluster-wide through the shared Redis, so a deployment that fails on one replica is spared
/// by all of them within moments, and a half-open deployment gets one probe from the whole cluster, not one per
/// replica.
/// </summary>
/// <remarks>
/// <para>Per deployment, two keys in one hash slot (so it works on Redis Cluster), and one channel for everyone:</para>
/// <list type="bullet">
/// <item><c>onyx:breaker:{deployment}</c> → the id of the latest open (<c>replica#n</c>), expiring with the
/// cooldown. The source of truth: a replica that starts, or reconnects, reads it and opens its own breaker for the
/// key's remaining TTL. TTLs run on the Redis server's clock, so the replicas' clocks never need to agree.</item>
/// <item><c>onyx:breaker:{deployment}:probe</c> → the replica sending the half-open probe, for at most
/// <see cref="RoutingOptions.ProbeLease"/>. A replica probes only once it holds this key; the others keep the
/// deployment out of rotation until the probe's verdict arrives (or the lease ends, when that replica died).</item>
/// <item>Channel <c>onyx:breakers</c>: <c>open|replica|ms|openId|deployment</c>, <c>close|…</c> and
/// <c>release|…</c> (a probe ended with no verdict). The fast path: each replica follows the others' messages,
/// without announcing them again, and skips its own.</item>
/// </list>
/// <para>
/// Each announcement is one Lua script (write the keys, then publish), so the messages arrive in the order the keys
/// changed. Nothing here may hold up a request or fail it: announcements run in the background, the probe claim
/// waits at most <see cref="RoutingOptions.BreakerRedisTimeout"/>, and while <see cref="RedisConnectionWatch"/> says
/// Redis is down each replica's breakers decide alone, as without Redis, without asking it, until it is back
/// (events 2003 and 2004); then the replica subscribes again if it must and reads what the others opened meanwhile.
/// </para>
/// <para>
/// Opens announced while Redis was unreachable are not replayed when it is back; those breakers close on their
/// replica's own probe, as single-replica breakers do.
/// </para>
/// </remarks>
internal sealed partial class RedisCircuitSync : ICircuitSync, IHealthCheck
{
    public const string ChannelName = "onyx:breakers";

    // KEYS: open key, probe key. ARGV: open id, cooldown ms, channel, message.
    private const string OpenScript = """
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        redis.call('DEL', KEYS[2])
        redis.call('PUBLISH', ARGV[3], ARGV[4])
        return 1
        """;

    // KEYS: open key, probe key. ARGV: channel, message.
    private const string CloseScript = """
        redis.call('DEL', KEYS[1], KEYS[2])
        redis.call('PUBLISH', ARGV[1], ARGV[2])
        return 1
        """;

    // KEYS: probe key. ARGV: replica, channel, message. Only the holder's lease is released.
    private const string ReleaseScript = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          redis.call('DEL', KEYS[1])
          redis.call('PUBLISH', ARGV[2], ARGV[3])
        end
        return 1
        """;

    // KEYS: open key, probe key. ARGV: the open id the caller waited out ('' if none), replica, lease ms.
    // Returns {verdict, id, ms}: {0} this replica probes (a lease it already holds is renewed);
    // {1, holder, lease left} another replica probes; {2, open id, TTL} the breaker was opened again.
    private const string ClaimScript = """
        local open = redis.call('GET', KEYS[1])
        if open and open ~= ARGV[1] then
          return {2, open, redis.call('PTTL', KEYS[1])}
        end
        local holder = redis.call('GET', KEYS[2])
        if holder and holder ~= ARGV[2] then
          return {1, holder, redis.call('PTTL', KEYS[2])}
        end
        redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
        return {0, ARGV[2], 0}
        """;

    private static readonly RedisChannel Channel = RedisChannel.Literal(ChannelName);

    /// <summary>Announcements are not on a request's path, so they may wait longer than a probe claim.</summary>
    private static readonly TimeSpan AnnounceTimeout = TimeSpan.FromSeconds(1);

    /// <summary>How long start-up (subscribe, read the open breakers) may wait for Redis before going on without it.</summary>
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(2);

    private readonly IConnectionMultiplexer _redis;
    private readonly RedisConnectionWatch _watch;
    private readonly string _replica;
    private readonly RoutingOptions _options;
    private readonly ILogger<RedisCircuitSync> _logger;
    private readonly SemaphoreSlim _syncing = new(1, 1);
    private IReadOnlyDictionary<string, CircuitBreaker> _breakers = new Dictionary<string, CircuitBreaker>();
    private ChannelMessageQueue? _messages;
    private bool _subscribeFailed;
    private long _opens;
    private int _stopped;

    public RedisCircuitSync(IConnectionMultiplexer redis, RedisConnectionWatch watch, ReplicaIdentity replica, IOptions<OnyxOptions> options,
        ILogger<RedisCircuitSync> logger)
    {
        _redis = redis;
        _watch = watch;
        _replica = replica.Id;
        _options = options.Value.Routing;
        _logger = logger;
    }

    public static RedisKey OpenKey(string deploymentId) => $"onyx:breaker:{{{deploymentId}}}";

    public static RedisKey ProbeKey(string deploymentId) => $"onyx:breaker:{{{deploymentId}}}:probe";

    /// <summary>Follows the other replicas from now on, and catches up with the breakers they opened before.</summary>
    public async Task StartAsync(IReadOnlyDictionary<string, CircuitBreaker> breakers, CancellationToken cancellationToken)
    {
        _breakers = breakers;
        // While Redis is down (logged by the follower), the sync waits for the watch to find it back; meanwhile the
        // breakers are this replica's own.
        _watch.Follow(OnRedisChanged);
        if (!_watch.IsUp)
        {
            return;
        }
        try
        {
            await SyncAsync().WaitAsync(StartTimeout, cancellationToken);
        }
        catch (TimeoutException ex)
        {
            // The sync goes on in the background; meanwhile the breakers are this replica's own.
            _watch.CallFailed("circuit breakers", ex);
        }
    }

    /// <summary>
    /// Stops following the others. No unsubscribe round trip: the connection closes with the process, and a stop
    /// that waits on Redis would only make shutdown slower.
    /// </summary>
    public Task StopAsync()
    {
        Volatile.Write(ref _stopped, 1);
        _watch.Unfollow(OnRedisChanged);
        return Task.CompletedTask;
    }

    public string Opened(string deploymentId, TimeSpan cooldown)
    {
        var openId = $"{_replica}#{Interlocked.Increment(ref _opens)}";
        var ms = Math.Max(1, (long)cooldown.TotalMilliseconds);
        Announce(database => database.ScriptEvaluateAsync(OpenScript, [OpenKey(deploymentId), ProbeKey(deploymentId)],
            [openId, ms, ChannelName, Message("open", ms, openId, deploymentId)]));
        return openId;
    }

    public void Closed(string deploymentId) =>
        Announce(database => database.ScriptEvaluateAsync(CloseScript, [OpenKey(deploymentId), ProbeKey(deploymentId)],
            [ChannelName, Message("close", 0, "", deploymentId)]));

    public void ProbeAbandoned(string deploymentId) =>
        Announce(database => database.ScriptEvaluateAsync(ReleaseScript, [ProbeKey(deploymentId)],
            [_replica, ChannelName, Message("release", 0, "", deploymentId)]));

    public async ValueTask<ProbeClaim> ClaimProbeAsync(string deploymentId, string? knownOpenId)
    {
        if (!_watch.IsUp)
        {
            return new ProbeClaim(ProbeVerdict.Unknown);
        }
        try
        {
            var leaseMs = Math.Max(1, (long)_options.ProbeLease.TotalMilliseconds);
            var claim = _redis.GetDatabase().ScriptEvaluateAsync(ClaimScript, [OpenKey(deploymentId), ProbeKey(deploymentId)],
                [knownOpenId ?? "", _replica, leaseMs]);
            var result = (RedisResult[])(await claim.WaitAsync(_options.BreakerRedisTimeout))!;
            var id = (string)result[1]!;
            var remaining = TimeSpan.FromMilliseconds(Math.Max(0, (long)result[2]));
            return (int)result[0] switch
            {
                0 => new ProbeClaim(ProbeVerdict.Won),
                1 => new ProbeClaim(ProbeVerdict.ProbingElsewhere, remaining, Replica: id),
                _ => new ProbeClaim(ProbeVerdict.ReopenedElsewhere, remaining, id, ReplicaOf(id)),
            };
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            _watch.CallFailed("circuit breakers", ex);
            return new ProbeClaim(ProbeVerdict.Unknown);
        }
        catch (ObjectDisposedException)
        {
            return new ProbeClaim(ProbeVerdict.Unknown); // The process is shutting down.
        }
    }

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(_watch.State is { Up: false } down
            ? HealthCheckResult.Degraded($"Redis is unreachable ({down.Reason}): each replica's breakers decide alone until it is back.")
            : HealthCheckResult.Healthy("Breakers are shared by every replica through Redis."));

    private string Message(string kind, long ms, string openId, string deploymentId) =>
        string.Create(CultureInfo.InvariantCulture, $"{kind}|{_replica}|{ms}|{openId}|{deploymentId}");

    private static string ReplicaOf(string openId) => openId.LastIndexOf('#') is > 0 and var hash ? openId[..hash] : openId;

    /// <summary>
    /// Runs an announcement in the background: the breaker calls this under its lock, on a request's path. None while
    /// the watch says Redis is down: it could not be delivered (see the remarks on what that leaves out).
    /// </summary>
    private void Announce(Func<IDatabase, Task> announcement)
    {
        if (_watch.IsUp)
        {
            _ = AnnounceAsync(announcement);
        }
    }

    private async Task AnnounceAsync(Func<IDatabase, Task> announcement)
    {
        try
        {
            await announcement(_redis.GetDatabase()).WaitAsync(AnnounceTimeout);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            _watch.CallFailed("circuit breakers", ex);
        }
        catch (ObjectDisposedException)
        {
            // The process is shutting down.
        }
    }

    /// <summary>Subscribes (once) and opens every breaker another replica has open now.</summary>
    private async Task SyncAsync()
    {
        await _syncing.WaitAsync();
        try
        {
            if (_messages is null)
            {
                var subscriber = _redis.GetSubscriber();
                if (_subscribeFailed)
                {
                    // A subscription that failed (Redis was down) stays registered in the multiplexer, which
                    // restores it on reconnect into a queue nobody reads: drop it before subscribing again.
                    await subscriber.UnsubscribeAsync(Channel);
                }
                _subscribeFailed = true;
                var messages = await subscriber.SubscribeAsync(Channel);
                _subscribeFailed = false;
                // One message at a time, in the order Redis published them.
                messages.OnMessage(message => Receive(message.Message));
                _messages = messages;
            }
            var database = _redis.GetDatabase();
            var reads = _breakers.Keys.Select(id => (Id: id, Read: database.StringGetWithExpiryAsync(OpenKey(id)))).ToList();
            foreach (var (id, read) in reads)
            {
                var open = await read;
                var openId = (string?)open.Value;
                if (openId is not null && open.Expiry is { } remaining && remaining > TimeSpan.Zero && ReplicaOf(openId) != _replica)
                {
                    _breakers[id].FollowOpen(openId, remaining, ReplicaOf(openId));
                }
            }
        }
        catch (RedisException ex)
        {
            _watch.CallFailed("circuit breakers", ex);
        }
        catch (ObjectDisposedException)
        {
            // The process is shutting down.
        }
        finally
        {
            _syncing.Release();
        }
    }

    /// <summary>Each change of the watch's state is this feature's change of mode, logged once.</summary>
    private void OnRedisChanged(RedisConnectionState state)
    {
        if (Volatile.Read(ref _stopped) == 1)
        {
            return;
        }
        if (state.Up)
        {
            Log.Back(_logger);
            // Messages published while Redis was unreachable (or too slow to use) are lost; the keys still say what
            // is open.
            _ = SyncAsync();
        }
        else
        {
            Log.FellBack(_logger, state.Reason ?? "unknown");
        }
    }

    private void Receive(RedisValue message)
    {
        if (Volatile.Read(ref _stopped) == 1)
        {
            return;
        }
        var parts = message.ToString().Split('|', 5);
        if (parts.Length != 5 || parts[1] == _replica || !_breakers.TryGetValue(parts[4], out var breaker))
        {
            return; // Its own announcement, or a deployment this replica's configuration does not have.
        }
        var replica = parts[1];
        switch (parts[0])
        {
            case "open" when long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var ms):
                breaker.FollowOpen(parts[3], TimeSpan.FromMilliseconds(ms), replica);
                break;
            case "close":
                breaker.FollowClose(replica);
                break;
            case "release":
                breaker.FollowProbeReleased();
                break;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(2003, LogLevel.Warning, "Redis is unreachable for circuit breakers ({Error}): each replica's breakers decide alone until it is back")]
        public static partial void FellBack(ILogger logger, string error);

        [LoggerMessage(2004, LogLevel.Information, "Redis is back: circuit breakers are cluster-wide again")]
        public static partial void Back(ILogger logger);
    }
}
