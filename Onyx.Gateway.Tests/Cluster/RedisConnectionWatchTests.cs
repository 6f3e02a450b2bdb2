using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Cluster;
using Onyx.Gateway.Tests.TestHost;
using StackExchange.Redis;

namespace Onyx.Gateway.Tests.Cluster;

/// <summary>
/// The one watch of the shared Redis, against a real redis-server that is killed, restarted, paused: what it says,
/// when, and how often it says it.
/// </summary>
public sealed class RedisConnectionWatchTests : IAsyncLifetime
{
    private const int DownEvent = 4010;
    private const int UpEvent = 4011;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private readonly LogCapture _logs = new();
    private readonly ILoggerFactory _loggers;
    private readonly List<IAsyncDisposable> _cleanup = [];
    private RedisServerProcess _redis = null!;

    public RedisConnectionWatchTests() => _loggers = LoggerFactory.Create(logging => logging.AddProvider(_logs));

    public async Task InitializeAsync() => _redis = await RedisServerProcess.StartAsync(Deadline);

    public async Task DisposeAsync()
    {
        for (var i = _cleanup.Count - 1; i >= 0; i--)
        {
            await _cleanup[i].DisposeAsync();
        }
        await _redis.DisposeAsync();
        _loggers.Dispose();
    }

    [Fact]
    public async Task LogsEachTransitionOnceAndTellsFollowersInOrder()
    {
        var watch = await StartWatchAsync(new RedisWatchOptions { PingInterval = TimeSpan.FromMilliseconds(100) });
        var told = new ConcurrentQueue<RedisConnectionState>();
        watch.Follow(told.Enqueue);
        Assert.True(watch.IsUp);
        Assert.Empty(told);

        var port = _redis.Port;
        var killed = DateTimeOffset.UtcNow;
        await _redis.DisposeAsync();
        var down = await _logs.WaitForAsync(r => r.EventId == DownEvent, Deadline);

        Assert.Equal(LogLevel.Warning, down.Level);
        var state = watch.State;
        Assert.False(state.Up);
        Assert.False(watch.IsUp);
        Assert.Equal(down["Reason"], state.Reason);
        Assert.InRange(state.Since, killed, DateTimeOffset.UtcNow);

        _redis = await RedisServerProcess.StartAsync(Deadline, port);
        var up = await _logs.WaitForAsync(r => r.EventId == UpEvent, Deadline);

        Assert.True(watch.IsUp);
        Assert.Null(watch.State.Reason);
        Assert.Equal(state.Reason, up["Reason"]);
        // Both connections (commands, pub/sub) failed and came back, and the pings failed while Redis was away: one
        // line each way.
        Assert.Single(_logs.Records, r => r.EventId == DownEvent);
        Assert.Single(_logs.Records, r => r.EventId == UpEvent);
        Assert.Equal([false, true], told.Select(s => s.Up));
    }

    [Fact]
    public async Task StartsDownWhenRedisIsNotThereAndComesUpWhenItIs()
    {
        var port = _redis.Port;
        await _redis.DisposeAsync();
        var watch = await StartWatchAsync(new RedisWatchOptions { PingInterval = TimeSpan.FromMilliseconds(100) });

        Assert.False(watch.IsUp);
        Assert.Single(_logs.Records, r => r.EventId == DownEvent);
        // A feature that follows during the outage hears at once that it starts on its fallback.
        var told = new ConcurrentQueue<RedisConnectionState>();
        watch.Follow(told.Enqueue);
        Assert.False(Assert.Single(told).Up);

        _redis = await RedisServerProcess.StartAsync(Deadline, port);
        await _logs.WaitForAsync(r => r.EventId == UpEvent, Deadline);

        Assert.True(watch.IsUp);
        Assert.Equal([false, true], told.Select(s => s.Up));
    }

    [Fact]
    public async Task AStalledRedisIsDownAfterAPingTimesOutAndUpWhenItAnswers()
    {
        var watch = await StartWatchAsync(new RedisWatchOptions { PingInterval = TimeSpan.FromMilliseconds(100), PingTimeout = TimeSpan.FromMilliseconds(200) });
        await using var admin = await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString + ",allowAdmin=true");

        await admin.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "1500", "ALL");
        var down = await _logs.WaitForAsync(r => r.EventId == DownEvent, Deadline);

        Assert.Equal("PING timed out after 200 ms", down["Reason"]);
        Assert.False(watch.IsUp);
        // The pause ends by itself; the next ping that answers brings it back.
        await _logs.WaitForAsync(r => r.EventId == UpEvent, Deadline);
        Assert.True(watch.IsUp);
    }

    [Fact]
    public async Task AFeaturesTimedOutCallMakesItPingAtOnceAndThePingDecides()
    {
        // No periodic ping within the test: only the feature's report can make the watch look.
        var watch = await StartWatchAsync(new RedisWatchOptions { PingInterval = TimeSpan.FromMinutes(10), PingTimeout = TimeSpan.FromMilliseconds(500) });
        await using var admin = await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString + ",allowAdmin=true");
        await admin.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "2000", "ALL");

        watch.CallFailed("rate limits", new TimeoutException("The operation has timed out."));
        // One slow answer is not an outage by itself...
        Assert.True(watch.IsUp);
        // ...but the ping it set off, stalled too, is.
        await _logs.WaitForAsync(r => r.EventId == DownEvent, Deadline);
        Assert.False(watch.IsUp);
        Assert.Equal("PING timed out after 500 ms", watch.State.Reason);
    }

    [Fact]
    public async Task ALostConnectionReportedByAFeatureIsDownAtOnce()
    {
        var watch = await StartWatchAsync(new RedisWatchOptions { PingInterval = TimeSpan.FromMinutes(10) });

        watch.CallFailed("keys", new RedisConnectionException(ConnectionFailureType.SocketClosed, "No connection is active"));

        Assert.False(watch.IsUp);
        Assert.Equal("keys: connection failed (SocketClosed)", watch.State.Reason);
        Assert.Single(_logs.Records, r => r.EventId == DownEvent);
    }

    [Fact]
    public async Task AFeaturesRuleTakesItDownAndAPingAnIntervalLaterBringsItBack()
    {
        var watch = await StartWatchAsync(new RedisWatchOptions { PingInterval = TimeSpan.FromSeconds(2) });

        var reported = DateTimeOffset.UtcNow;
        watch.ReportDown("rate limits", "3 answers in a row slower than 50 ms");

        Assert.False(watch.IsUp);
        Assert.Equal("rate limits: 3 answers in a row slower than 50 ms", watch.State.Reason);
        await _logs.WaitForAsync(r => r.EventId == UpEvent, Deadline);
        // Not by a ping at once: an interval (2 s) after the report, so a Redis that is merely slow cannot flap. (A timer
        // may fire a little early: the bound leaves room for that, not for a ping at once.)
        Assert.True(DateTimeOffset.UtcNow - reported >= TimeSpan.FromSeconds(1.5), $"up after {(DateTimeOffset.UtcNow - reported).TotalMilliseconds:0} ms");
        Assert.True(watch.IsUp);
    }

    [Fact]
    public async Task ABadPingSettingStopsTheStartNamingTheKey()
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAsync(new()
        {
            ["ConnectionStrings:redis"] = _redis.ConnectionString,
            ["Onyx:Redis:PingTimeout"] = "00:00:00",
        }));

        Assert.Contains("Onyx:Redis:PingTimeout must be between", error.Message, StringComparison.Ordinal);
    }

    private async Task<RedisConnectionWatch> StartWatchAsync(RedisWatchOptions options)
    {
        // Built as the gateway builds its connection (Cluster/ClusterExtensions.cs).
        var redis = await ConnectionMultiplexer.ConnectAsync(new ConfigurationOptions
        {
            EndPoints = { _redis.ConnectionString },
            AbortOnConnectFail = false,
            BacklogPolicy = BacklogPolicy.FailFast,
        });
        var watch = new RedisConnectionWatch(redis, Options.Create(options), TimeProvider.System, _loggers.CreateLogger<RedisConnectionWatch>());
        await watch.StartAsync(CancellationToken.None);
        _cleanup.Add(redis);
        _cleanup.Add(new Stop(watch));
        return watch;
    }

    private sealed class Stop(RedisConnectionWatch watch) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await watch.StopAsync(CancellationToken.None);
            watch.Dispose();
        }
    }
}
