using System.Globalization;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Onyx.Gateway.Cluster;

/// <summary>What the watch knows of the shared Redis: up or down, why it is down, and since when.</summary>
internal sealed record RedisConnectionState(bool Up, string? Reason, DateTimeOffset Since);

/// <summary>
/// The one owner of "is the shared Redis reachable?". Every feature with a fallback (rate limits, keys, circuit
/// breakers, audit, replica registration) reads <see cref="IsUp"/> and <see cref="Follow"/>s it instead of
/// detecting outages on its own, so they fall back and come back together, and each transition is logged once.
/// </summary>
/// <remarks>
/// Down: at once when the multiplexer loses a connection (<c>ConnectionFailed</c>), when a feature's call fails
/// for want of a connection (<see cref="CallFailed"/>), when a feature's own rule says Redis is too slow to use
/// (<see cref="ReportDown"/>), or when a ping gets no answer within <see cref="RedisWatchOptions.PingTimeout"/>.
/// Up: only when a ping answers in time, on the command connection and on the pub/sub connection alike, so a feature
/// that resumes (subscribes, reads, writes) finds both working. Pings run every
/// <see cref="RedisWatchOptions.PingInterval"/>, and at once when the multiplexer restores a connection or a
/// feature's call timed out. The health check only reads this state: it never waits on Redis.
/// </remarks>
internal sealed partial class RedisConnectionWatch : IHostedService, IHealthCheck, IDisposable
{
    private readonly IConnectionMultiplexer _redis;
    private readonly RedisWatchOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<RedisConnectionWatch> _logger;
    private readonly Lock _transition = new();
    private readonly CancellationTokenSource _stopping = new();
    private RedisConnectionState _state;
    private TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _pingNow;
    private long _lastPingTicks = -1;
    private Task _loop = Task.CompletedTask;
    private Action<RedisConnectionState>? _followers;

    public RedisConnectionWatch(IConnectionMultiplexer redis, IOptions<RedisWatchOptions> options, TimeProvider time, ILogger<RedisConnectionWatch> logger)
    {
        _redis = redis;
        _options = options.Value;
        _time = time;
        _logger = logger;
        // The multiplexer has tried to connect by now (it is built with AbortOnConnectFail=false, so a failed first
        // connect leaves it retrying in the background rather than throwing).
        _state = redis.IsConnected
            ? new RedisConnectionState(true, null, time.GetUtcNow())
            : new RedisConnectionState(false, "not connected since the gateway started", time.GetUtcNow());
        redis.ConnectionFailed += OnConnectionFailed;
        redis.ConnectionRestored += OnConnectionRestored;
    }

    public RedisConnectionState State => Volatile.Read(ref _state);

    public bool IsUp => State.Up;

    /// <summary>
    /// Tells <paramref name="follower"/> the state now if Redis is down (a feature created during an outage starts on
    /// its fallback), then each transition, once, in order, on the thread that made it; nothing is missed or told
    /// twice. Followers must be quick and must not wait on Redis: they start background work instead.
    /// </summary>
    public void Follow(Action<RedisConnectionState> follower)
    {
        lock (_transition)
        {
            _followers += follower;
            if (!_state.Up)
            {
                Tell(follower, _state);
            }
        }
    }

    public void Unfollow(Action<RedisConnectionState> follower)
    {
        lock (_transition)
        {
            _followers -= follower;
        }
    }

    /// <summary>
    /// A feature's Redis call failed. No connection: Redis is down from now on. A timeout: one slow answer is not an
    /// outage, so the watch pings at once and lets that ping decide.
    /// </summary>
    public void CallFailed(string feature, Exception error)
    {
        if (error is RedisConnectionException)
        {
            ReportDown(feature, Describe(error));
        }
        else if (error is TimeoutException or RedisTimeoutException)
        {
            Wake(ping: true);
        }
    }

    /// <summary>A feature's own rule (e.g. "3 slow answers in a row") says Redis is not usable now.</summary>
    public void ReportDown(string feature, string reason)
    {
        if (Transition(up: false, $"{feature}: {reason}"))
        {
            // The next ping one whole interval from now: a Redis that is merely slow must not flap back at once.
            Wake(ping: false);
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var state = State;
        if (!state.Up)
        {
            Log.Down(_logger, state.Reason ?? "unknown");
        }
        _loop = RunAsync(_stopping.Token);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _redis.ConnectionFailed -= OnConnectionFailed;
        _redis.ConnectionRestored -= OnConnectionRestored;
        await _stopping.CancelAsync();
        await _loop.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var state = State;
        var data = new Dictionary<string, object>
        {
            ["state"] = state.Up ? "up" : "down",
            ["since"] = state.Since.ToString("O", CultureInfo.InvariantCulture),
        };
        if (state.Up)
        {
            if (Interlocked.Read(ref _lastPingTicks) is >= 0 and var ticks)
            {
                data["last_ping_ms"] = Math.Round(TimeSpan.FromTicks(ticks).TotalMilliseconds, 1);
            }
            return Task.FromResult(HealthCheckResult.Healthy("Redis answers.", data));
        }
        data["reason"] = state.Reason ?? "unknown";
        return Task.FromResult(HealthCheckResult.Degraded(
            $"Redis is unreachable ({state.Reason}): rate limits, keys, circuit breakers, audit and replica registration run on their fallbacks until it answers.",
            data: data));
    }

    /// <summary>
    /// Stops the loop; <see cref="_stopping"/> itself is left undisposed (it holds no timer): a host stopped twice
    /// (a test's factory disposed twice) calls <see cref="StopAsync"/> after this.
    /// </summary>
    public void Dispose()
    {
        _redis.ConnectionFailed -= OnConnectionFailed;
        _redis.ConnectionRestored -= OnConnectionRestored;
        _stopping.Cancel();
    }

    /// <summary>
    /// A failed call in a few words, fit for <c>/health</c> (which needs no key): the kind of failure, not the client's
    /// full diagnostics (endpoints, thread-pool counters), which it logs itself.
    /// </summary>
    public static string Describe(Exception error) => error switch
    {
        RedisConnectionException connection => $"connection failed ({connection.FailureType})",
        TimeoutException or RedisTimeoutException => "timed out",
        // The server's own words (LOADING, READONLY, OOM…): short, and what an operator needs.
        RedisServerException server => server.Message.Length <= 200 ? server.Message : server.Message[..200],
        _ => error.GetType().Name,
    };

    private void OnConnectionFailed(object? sender, ConnectionFailedEventArgs e) =>
        Transition(up: false, $"{e.ConnectionType} connection lost ({e.FailureType})");

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e) => Wake(ping: true);

    private async Task RunAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            var wake = Volatile.Read(ref _wake);
            bool elapsed;
            using (var interval = CancellationTokenSource.CreateLinkedTokenSource(stopping))
            {
                var delay = Task.Delay(_options.PingInterval, _time, interval.Token);
                await Task.WhenAny(delay, wake.Task);
                elapsed = delay.IsCompletedSuccessfully;
                await interval.CancelAsync();
            }
            if (stopping.IsCancellationRequested)
            {
                return;
            }
            if (wake.Task.IsCompleted)
            {
                // Armed before the request flag is read: a wake that comes after the read completes the new one.
                Interlocked.CompareExchange(ref _wake, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), wake);
            }
            if (Interlocked.Exchange(ref _pingNow, 0) == 1 || elapsed)
            {
                await PingAsync(stopping);
            }
        }
    }

    private void Wake(bool ping)
    {
        if (ping)
        {
            Interlocked.Exchange(ref _pingNow, 1);
        }
        Volatile.Read(ref _wake).TrySetResult();
    }

    private async Task PingAsync(CancellationToken stopping)
    {
        var started = _time.GetTimestamp();
        try
        {
            // Both connections: features resume by subscribing as well as by reading and writing.
            await Task.WhenAll(_redis.GetDatabase().PingAsync(), _redis.GetSubscriber().PingAsync())
                .WaitAsync(_options.PingTimeout, _time, stopping);
            Interlocked.Exchange(ref _lastPingTicks, _time.GetElapsedTime(started).Ticks);
            Transition(up: true, null);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
        catch (ObjectDisposedException)
        {
            // The multiplexer is gone: the process is shutting down.
        }
        catch (TimeoutException)
        {
            Transition(up: false, string.Create(CultureInfo.InvariantCulture, $"PING timed out after {_options.PingTimeout.TotalMilliseconds:0} ms"));
        }
        catch (Exception ex)
        {
            // A RedisException, or a ping the client cancelled while it re-established the connection: no answer,
            // whatever the type. The loop must go on whatever happened, or nothing would ever find Redis back.
            Transition(up: false, $"PING failed: {Describe(ex)}");
        }
    }

    private bool Transition(bool up, string? reason)
    {
        lock (_transition)
        {
            var was = _state;
            if (was.Up == up)
            {
                return false;
            }
            var now = _time.GetUtcNow();
            var state = new RedisConnectionState(up, reason, now);
            Volatile.Write(ref _state, state);
            // Under the lock, so every follower sees the transitions in the order they happened; before the log line,
            // so that when it says the shared features resume (or fall back), they have.
            Tell(_followers, state);
            if (up)
            {
                Log.Up(_logger, Math.Round((now - was.Since).TotalSeconds, 1), was.Reason ?? "unknown");
            }
            else
            {
                Log.Down(_logger, reason ?? "unknown");
            }
            return true;
        }
    }

    /// <summary>Each follower in turn; one that throws must not keep the others from hearing, nor undo the transition.</summary>
    private void Tell(Action<RedisConnectionState>? followers, RedisConnectionState state)
    {
        if (followers is null)
        {
            return;
        }
        foreach (var follower in followers.GetInvocationList().Cast<Action<RedisConnectionState>>())
        {
            try
            {
                follower(state);
            }
            catch (Exception ex)
            {
                Log.FollowerFailed(_logger, follower.Method.DeclaringType?.Name ?? "?", ex);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(4012, LogLevel.Error, "{Follower} failed while following a change of the Redis connection")]
        public static partial void FollowerFailed(ILogger logger, string follower, Exception error);

        [LoggerMessage(4010, LogLevel.Warning, "Redis is unreachable ({Reason}): rate limits, keys, circuit breakers, audit and replica registration run on their fallbacks until it answers")]
        public static partial void Down(ILogger logger, string reason);

        [LoggerMessage(4011, LogLevel.Information, "Redis answers again after {DownSeconds} s ({Reason}): the shared features resume")]
        public static partial void Up(ILogger logger, double downSeconds, string reason);
    }
}
