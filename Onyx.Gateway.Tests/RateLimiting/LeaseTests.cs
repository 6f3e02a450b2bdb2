using System.Net;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;
using StackExchange.Redis;

namespace Onyx.Gateway.Tests.RateLimiting;

/// <summary>
/// A parallel-request slot taken in Redis never outlives its request, whatever goes wrong: an admission that reaches Redis
/// after its request was decided in memory, a client that leaves during the admission, a record Redis could not take.
/// A running call keeps its slot past the lease by renewing it. Two replicas on one real redis-server; the user may have
/// one request in flight, so a stuck slot would refuse every later request on every replica.
/// </summary>
public sealed class LeaseTests : ReplicasOnOneRedis
{
    private const string InFlight = "onyx:rl:{master}:par";

    protected override Dictionary<string, string?> ReplicaSettings => new()
    {
        ["LITELLM_MASTER_KEY"] = TestKeys.MasterKey,
        ["litellm_settings:rate_limit:max_parallel_requests"] = "1",
    };

    [Fact]
    public async Task AnAdmissionThatReachesRedisAfterItsRequestWasDecidedInMemoryLeavesNoSlot()
    {
        var a = await StartReplicaAsync();
        var b = await StartReplicaAsync();
        using var onA = a.CreateClient(TestKeys.MasterKey);
        using var onB = b.CreateClient(TestKeys.MasterKey);
        await SendAsync(onA, HttpStatusCode.OK);

        // Redis answers no one for 400 ms: the admission, sent at once, waits past its 50 ms and is decided in memory;
        // Redis counts it when the pause ends.
        await using var admin = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString + ",allowAdmin=true");
        await admin.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "400", "ALL");
        await SendAsync(onA, HttpStatusCode.OK);

        var freed = await a.Logs.WaitForAsync(r => r.EventId == 5012, TimeSpan.FromSeconds(10));
        Assert.Contains("decided in memory", (string?)freed["Why"]);
        Assert.Equal(0, await admin.GetDatabase().SortedSetLengthAsync(InFlight));
        // The other replica admits the user's next request: no slot is left in Redis.
        await SendAsync(onB, HttpStatusCode.OK);
    }

    [Fact]
    public async Task AnAdmissionWhoseClientLeftIsFreedInRedis()
    {
        var settings = new Dictionary<string, string?> { ["Onyx:RateLimits:RedisTimeout"] = "00:00:10" };
        var a = await StartReplicaAsync(settings);
        var b = await StartReplicaAsync(settings);
        using var onA = a.CreateClient(TestKeys.MasterKey);
        using var onB = b.CreateClient(TestKeys.MasterKey);
        await SendAsync(onA, HttpStatusCode.OK);

        // The client gives up while its admission waits on a Redis that answers no one for a second.
        await using var admin = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString + ",allowAdmin=true");
        await admin.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "1000", "ALL");
        using (var leaving = new CancellationTokenSource(TimeSpan.FromMilliseconds(300)))
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
                onA.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()), leaving.Token));
        }

        var freed = await a.Logs.WaitForAsync(r => r.EventId == 5012, TimeSpan.FromSeconds(10));
        Assert.Contains("client left", (string?)freed["Why"]);
        Assert.Equal(0, await admin.GetDatabase().SortedSetLengthAsync(InFlight));
        await SendAsync(onB, HttpStatusCode.OK);
        Assert.Equal(2, a.Primary.Calls + b.Primary.Calls);
    }

    [Fact]
    public async Task ASlotWhoseRecordCouldNotBeWrittenIsFreed()
    {
        var a = await StartReplicaAsync();
        var b = await StartReplicaAsync();
        using var onA = a.CreateClient(TestKeys.MasterKey);
        using var onB = b.CreateClient(TestKeys.MasterKey);
        a.Primary.Fault = FakeFault.HangBeforeHeaders;
        using var leaving = new CancellationTokenSource();
        var hanging = onA.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)), leaving.Token);
        await a.Primary.WaitForCallsAsync(1, TimeSpan.FromSeconds(10));
        await using var admin = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString + ",allowAdmin=true");
        Assert.Equal(1, await admin.GetDatabase().SortedSetLengthAsync(InFlight));

        // The call ends while Redis answers no one for 1.5 s: its record times out (after 1 s) and is not written.
        await admin.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "1500", "ALL");
        await leaving.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => hanging);

        var freed = await a.Logs.WaitForAsync(r => r.EventId == 5012, TimeSpan.FromSeconds(10));
        Assert.Contains("record could not be written", (string?)freed["Why"]);
        Assert.Equal(0, await admin.GetDatabase().SortedSetLengthAsync(InFlight));
        await SendAsync(onB, HttpStatusCode.OK);
    }

    [Fact]
    public async Task ARunningCallKeepsItsSlotPastTheLeaseAndFreesItWhenItEnds()
    {
        // The slot must be taken in Redis (decided in memory, an admission takes no slot there).
        var settings = DecidedInRedis(new() { ["Onyx:RateLimits:ParallelLease"] = "00:00:03" });
        var a = await StartReplicaAsync(settings);
        var b = await StartReplicaAsync(settings);
        using var onA = a.CreateClient(TestKeys.MasterKey);
        using var onB = b.CreateClient(TestKeys.MasterKey);
        a.Primary.Fault = FakeFault.HangBeforeHeaders;
        using var leaving = new CancellationTokenSource();
        var running = onA.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)), leaving.Token);
        await a.Primary.WaitForCallsAsync(1, TimeSpan.FromSeconds(10));
        await using var admin = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString + ",allowAdmin=true");
        var database = admin.GetDatabase();
        var taken = (await database.SortedSetRangeByRankWithScoresAsync(InFlight)).Single();

        // Until Redis's own clock is past the lease of the admission, then once more past a renewal tick.
        await RealClock.WaitAsync(TimeSpan.FromMilliseconds(taken.Score + 4_000 - await RedisNowAsync(database)));
        var renewed = await database.SortedSetScoreAsync(InFlight, taken.Element);
        Assert.NotNull(renewed);
        Assert.True(renewed > taken.Score, "the slot was not renewed");
        var refused = await SendAsync(onB, HttpStatusCode.TooManyRequests);
        Assert.Equal("parallel_requests", (string?)refused["type"]);

        await leaving.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running);
        await a.Logs.WaitForAsync(r => r.EventId == 3001 && (int?)r["Status"] == 499, TimeSpan.FromSeconds(10));
        await SendAsync(onB, HttpStatusCode.OK);
    }

    private static async Task<double> RedisNowAsync(IDatabase database)
    {
        var time = (RedisResult[])(await database.ExecuteAsync("TIME"))!;
        return (long)time[0] * 1000.0 + (long)time[1] / 1000;
    }

    private static async Task<System.Text.Json.Nodes.JsonNode> SendAsync(HttpClient client, HttpStatusCode expected)
    {
        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(expected == response.StatusCode, $"{(int)response.StatusCode}: {body}");
        return expected == HttpStatusCode.OK ? System.Text.Json.Nodes.JsonNode.Parse(body)! : System.Text.Json.Nodes.JsonNode.Parse(body)!["error"]!;
    }
}
