using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Onyx.Gateway.Cluster;
using Onyx.Gateway.Model;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;
using StackExchange.Redis;

namespace Onyx.Gateway.Tests.Resilience;

/// <summary>
/// Cluster-wide breakers: gateways in this process acting as replicas of one deployment, sharing a real
/// redis-server — and each replica on its own when that Redis stops or stalls. Each replica has its own fake
/// primary, so a replica's primary call count says exactly what that replica sent upstream.
/// </summary>
public sealed class SharedCircuitBreakerTests : ReplicasOnOneRedis
{
    private const string PrimaryDeployment = "together_ai/deepseek-ai/DeepSeek-V3";
    private static readonly string OpenKey = $"onyx:breaker:{{{PrimaryDeployment}}}";

    /// <summary>A breaker short enough to wait out in real time: Redis TTLs run on the server's clock, which no fake drives.</summary>
    private static readonly Dictionary<string, string?> ShortCooldown = new() { ["router_settings:cooldown_time"] = "1" };

    protected override Dictionary<string, string?> ReplicaSettings => new()
    {
        // Only the breakers talk to Redis on a request's path here, so what a request waits for is theirs.
        ["Onyx:RateLimits:Enabled"] = "false",
    };

    private static string ReplicaOf(GatewayHost gateway) => gateway.Services.GetRequiredService<ReplicaIdentity>().Id;

    private static async Task<HttpResponseMessage> ChatAsync(GatewayHost gateway, CancellationToken cancellationToken = default)
    {
        using var client = gateway.CreateClient();
        return await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()), cancellationToken);
    }

    /// <summary>Three failures on the replica's primary, each answered by its fallback: its breaker opens.</summary>
    private static async Task OpenOnAsync(GatewayHost gateway)
    {
        gateway.Primary.FailNext(3, FakeFault.Status(500));
        for (var i = 0; i < 3; i++)
        {
            using var response = await ChatAsync(gateway);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("true", OpenAiResponses.Header(response, "x-onyx-fallback"));
        }
    }

    /// <summary>The primary's line in the replica's /health (whatever its status code: 503 while Redis is down).</summary>
    private static async Task<string> PrimaryHealthAsync(GatewayHost gateway)
    {
        using var client = gateway.CreateClient();
        using var response = await client.GetAsync("/health");
        var health = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        return (string)health["checks"]!["deployments"]!["data"]![PrimaryDeployment]!;
    }

    /// <summary>When the replica's breaker lets its probe through, as its /health announces it.</summary>
    private static async Task<DateTimeOffset> OpenUntilAsync(GatewayHost gateway)
    {
        const string prefix = "circuit open until ";
        var state = await PrimaryHealthAsync(gateway);
        Assert.StartsWith(prefix, state);
        return DateTimeOffset.Parse(state[prefix.Length..], CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);
    }

    /// <summary>
    /// Waits in real time for an announced instant, plus a hair: the breaker's deadline is on the monotonic clock, and
    /// /health states it on the wall clock, which may run a little apart.
    /// </summary>
    private static Task WaitUntilAsync(DateTimeOffset instant) => RealClock.WaitUntilAsync(instant + TimeSpan.FromMilliseconds(20));

    private static Task<CapturedLog> FollowedAsync(GatewayHost gateway, string to, TimeSpan timeout) =>
        gateway.Logs.WaitForAsync(r => r.EventId == 2002 && r["To"]?.ToString() == to, timeout);

    /// <summary>Watches the breakers' channel as another replica would, to know an announcement went out.</summary>
    private async Task<(ConnectionMultiplexer Connection, Func<string, Task<string>> Next)> WatchAnnouncementsAsync()
    {
        var connection = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        var messages = await connection.GetSubscriber().SubscribeAsync(RedisChannel.Literal("onyx:breakers"));
        async Task<string> Next(string kind)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            while (true)
            {
                var message = (await messages.ReadAsync(timeout.Token)).Message.ToString();
                if (message.StartsWith(kind + "|", StringComparison.Ordinal))
                {
                    return message;
                }
            }
        }
        return (connection, Next);
    }

    [Fact]
    public async Task ABreakerOpenedOnOneReplicaIsOpenOnTheOthersWithinASecond()
    {
        var a = await StartReplicaAsync();
        var b = await StartReplicaAsync();

        await OpenOnAsync(a);

        var followed = await FollowedAsync(b, "Open", TimeSpan.FromSeconds(1));
        Assert.Equal(PrimaryDeployment, followed["Deployment"]);
        Assert.Equal(ReplicaOf(a), followed["Replica"]);
        Assert.DoesNotContain(b.Logs.Records, r => r.EventId == 2001);

        using var onB = await ChatAsync(b);
        Assert.Equal(HttpStatusCode.OK, onB.StatusCode);
        Assert.Equal("true", OpenAiResponses.Header(onB, "x-onyx-fallback"));
        Assert.Equal("1", OpenAiResponses.Header(onB, "x-onyx-attempts"));
        Assert.Equal(0, b.Primary.Calls);
        Assert.Equal(1, b.Fallback.Calls);
        Assert.StartsWith("circuit open until", await PrimaryHealthAsync(b));

        // Redis keeps the open for the cooldown, naming the replica that opened it.
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        var open = await redis.GetDatabase().StringGetWithExpiryAsync(OpenKey);
        Assert.StartsWith(ReplicaOf(a) + "#", open.Value.ToString());
        Assert.InRange(open.Expiry!.Value, TimeSpan.FromSeconds(50), TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task AReplicaStartedAfterTheBreakerOpenedFindsItOpen()
    {
        var a = await StartReplicaAsync();
        var (watcher, next) = await WatchAnnouncementsAsync();
        await using (watcher)
        {
            await OpenOnAsync(a);
            await next("open");
        }

        var b = await StartReplicaAsync();

        Assert.StartsWith("circuit open until", await PrimaryHealthAsync(b));
        using var onB = await ChatAsync(b);
        Assert.Equal("true", OpenAiResponses.Header(onB, "x-onyx-fallback"));
        Assert.Equal(0, b.Primary.Calls);
        var followed = Assert.Single(b.Logs.Records, r => r.EventId == 2002);
        Assert.Equal(ReplicaOf(a), followed["Replica"]);
    }

    [Fact]
    public async Task HalfOpenSendsExactlyOneProbeAcrossTheCluster()
    {
        // A claim whose Redis answer comes after the bound is decided by its replica alone (it probes); on two busy
        // cores that happens, so exactness is tested with a bound no answer misses (the bound: AStalledRedis…).
        var exact = new Dictionary<string, string?>(ShortCooldown) { ["Onyx:Routing:BreakerRedisTimeout"] = "00:00:02" };
        var a = await StartReplicaAsync(exact);
        var b = await StartReplicaAsync(exact);
        await OpenOnAsync(a);
        await FollowedAsync(b, "Open", TimeSpan.FromSeconds(5));
        // Whichever replica sends the probe, it stays in flight until this test lets it go, so every other
        // request is decided while the cluster waits for the probe's verdict.
        a.Primary.Fault = FakeFault.HangBeforeHeaders;
        b.Primary.Fault = FakeFault.HangBeforeHeaders;
        var halfOpen = new[] { await OpenUntilAsync(a), await OpenUntilAsync(b) }.Max();
        await WaitUntilAsync(halfOpen);

        using var release = new CancellationTokenSource();
        var pending = Enumerable.Range(0, 10).Select(i => ChatAsync(i % 2 == 0 ? a : b, release.Token)).ToList();
        var answered = new List<HttpResponseMessage>();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        {
            while (answered.Count < 9)
            {
                var done = await Task.WhenAny(pending).WaitAsync(timeout.Token);
                pending.Remove(done);
                answered.Add(await done);
            }
        }
        var probe = Assert.Single(pending);
        // Replica a's primary already took the three failed calls.
        await Task.WhenAny(a.Primary.WaitForCallsAsync(4, TimeSpan.FromSeconds(10)), b.Primary.WaitForCallsAsync(1, TimeSpan.FromSeconds(10)));

        Assert.Equal(1, a.Primary.Calls - 3 + b.Primary.Calls);
        Assert.All(answered, r =>
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Equal("true", OpenAiResponses.Header(r, "x-onyx-fallback"));
        });
        var prober = a.Primary.Calls == 4 ? a : b;
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        Assert.Equal(ReplicaOf(prober), (string?)await redis.GetDatabase().StringGetAsync(OpenKey + ":probe"));

        // The probe's client goes away: no verdict, and the claim is given up for the next replica.
        var (watcher, next) = await WatchAnnouncementsAsync();
        await using (watcher)
        {
            await release.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => probe);
            Assert.Contains(ReplicaOf(prober), await next("release"));
        }
        Assert.False(await redis.GetDatabase().KeyExistsAsync(OpenKey + ":probe"));
        answered.ForEach(r => r.Dispose());
    }

    [Fact]
    public async Task AProbeThatSucceedsClosesTheBreakerOnEveryReplica()
    {
        var a = await StartReplicaAsync(ShortCooldown);
        var b = await StartReplicaAsync(ShortCooldown);
        await OpenOnAsync(a);
        await FollowedAsync(b, "Open", TimeSpan.FromSeconds(5));
        await WaitUntilAsync(await OpenUntilAsync(a));

        using (var probe = await ChatAsync(a))
        {
            Assert.Equal("false", OpenAiResponses.Header(probe, "x-onyx-fallback"));
        }
        Assert.Equal(4, a.Primary.Calls);

        var closed = await FollowedAsync(b, "Closed", TimeSpan.FromSeconds(5));
        Assert.Equal(ReplicaOf(a), closed["Replica"]);
        Assert.Equal("available (circuit closed)", await PrimaryHealthAsync(b));
        using var onB = await ChatAsync(b);
        Assert.Equal("false", OpenAiResponses.Header(onB, "x-onyx-fallback"));
        Assert.Equal(1, b.Primary.Calls);
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        Assert.False(await redis.GetDatabase().KeyExistsAsync(OpenKey));
    }

    [Fact]
    public async Task WhileRedisIsDownEachReplicaBreaksOnItsOwnWithoutDelay()
    {
        var a = await StartReplicaAsync(ShortCooldown);
        var b = await StartReplicaAsync(ShortCooldown);
        // A first request through each replica, so what is timed below is a warm gateway.
        (await ChatAsync(a)).Dispose();
        (await ChatAsync(b)).Dispose();
        await Redis.DisposeAsync();

        a.Primary.FailNext(3, FakeFault.Status(500));
        for (var i = 0; i < 5; i++)
        {
            var clock = Stopwatch.StartNew();
            using var response = await ChatAsync(a);
            var elapsed = clock.Elapsed;
            Assert.Equal("true", OpenAiResponses.Header(response, "x-onyx-fallback"));
            // 1 s leaves room for a busy machine; a request that waited on a dead Redis would take seconds.
            Assert.True(elapsed < TimeSpan.FromSeconds(1), $"request {i + 1} answered after {elapsed.TotalMilliseconds:0} ms");
        }
        Assert.Equal(1 + 3, a.Primary.Calls);
        Assert.Equal("Open", Assert.Single(a.Logs.Records, r => r.EventId == 2001)["To"]?.ToString());
        Assert.Single(a.Logs.Records, r => r.EventId == 2003);

        // Replica b heard nothing: its primary still gets its traffic.
        using (var onB = await ChatAsync(b))
        {
            Assert.Equal("false", OpenAiResponses.Header(onB, "x-onyx-fallback"));
        }
        Assert.Equal(2, b.Primary.Calls);
        Assert.Equal("available (circuit closed)", await PrimaryHealthAsync(b));

        // After the cooldown, a probes on its own, at once.
        await WaitUntilAsync(await OpenUntilAsync(a));
        var probeClock = Stopwatch.StartNew();
        using (var probe = await ChatAsync(a))
        {
            Assert.True(probeClock.Elapsed < TimeSpan.FromSeconds(1), $"answered after {probeClock.Elapsed.TotalMilliseconds:0} ms");
            Assert.Equal("false", OpenAiResponses.Header(probe, "x-onyx-fallback"));
        }
        Assert.Equal(1 + 4, a.Primary.Calls);
        Assert.Equal("available (circuit closed)", await PrimaryHealthAsync(a));
    }

    [Fact]
    public async Task AReplicaThatStartedWhileRedisWasDownFollowsTheOthersOnceItIsBack()
    {
        var port = Redis.Port;
        await Redis.DisposeAsync();
        var late = await StartReplicaAsync();
        Assert.Single(late.Logs.Records, r => r.EventId == 2003);

        Redis = await RedisServerProcess.StartAsync(TimeSpan.FromSeconds(20), port);
        // Its connection comes back on its own; then it subscribes and reads the open breakers (none yet).
        await late.Logs.WaitForAsync(r => r.EventId == 2004, TimeSpan.FromSeconds(20));
        var other = await StartReplicaAsync();
        await OpenOnAsync(other);

        // Opened after the catch-up read: only the subscription made at reconnect can tell it.
        var followed = await FollowedAsync(late, "Open", TimeSpan.FromSeconds(5));
        Assert.Equal(ReplicaOf(other), followed["Replica"]);
        using var response = await ChatAsync(late);
        Assert.Equal("true", OpenAiResponses.Header(response, "x-onyx-fallback"));
        Assert.Equal(0, late.Primary.Calls);
    }

    [Fact]
    public async Task AStalledRedisDoesNotHoldTheProbe()
    {
        var a = await StartReplicaAsync(ShortCooldown);
        await OpenOnAsync(a);
        await WaitUntilAsync(await OpenUntilAsync(a));

        // Redis stops answering anyone for 3 s (this connection is closed only afterwards: closing waits out the pause).
        await using var admin = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString + ",allowAdmin=true");
        await admin.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "3000", "ALL");
        var clock = Stopwatch.StartNew();
        using var probe = await ChatAsync(a);
        var elapsed = clock.Elapsed;

        // The claim gave up after 50 ms and the replica probed on its own.
        Assert.Equal("false", OpenAiResponses.Header(probe, "x-onyx-fallback"));
        Assert.Equal(4, a.Primary.Calls);
        Assert.True(elapsed < TimeSpan.FromSeconds(1), $"answered after {elapsed.TotalMilliseconds:0} ms");
        // One slow claim is not an outage: it makes the Redis watch ping at once, and that ping, stalled too, takes
        // the breakers to their own decisions.
        var fellBack = await a.Logs.WaitForAsync(r => r.EventId == 2003, TimeSpan.FromSeconds(5));
        Assert.Contains("timed out", (string?)fellBack["Error"], StringComparison.OrdinalIgnoreCase);
        Assert.Single(a.Logs.Records, r => r.EventId == 2003);
    }
}
