using System.Net;
using System.Text.Json.Nodes;
using Onyx.AppHost.Redis;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.AppHost;

/// <summary>
/// Redis run with the persistence the AppHost gives it (an append-only file synced every second, in a data directory
/// kept across runs) is the gateway's system of record: a restart of Redis keeps generated keys, their spend and the
/// audit trail, as the gateway's own API shows them.
/// </summary>
public sealed class RedisDurabilityTests : IAsyncLifetime
{
    private const string MasterKey = "sk-master-durable-73c1a9";

    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    /// <summary>12 prompt tokens at $1.25/M and 4 completion tokens at $2.50/M (the fake's usage report).</summary>
    private static readonly decimal CallCost = 12 * 1.25m / 1_000_000 + FakeBehavior.DefaultTokens.Count * 2.5m / 1_000_000;

    private readonly string _data = Directory.CreateTempSubdirectory("onyx-redis-durable-").FullName;
    private readonly List<GatewayHost> _gateways = [];
    private RedisServerProcess _redis = null!;

    public async Task InitializeAsync() => _redis = await StartRedisAsync(port: null);

    public async Task DisposeAsync()
    {
        foreach (var gateway in _gateways)
        {
            await gateway.DisposeAsync();
        }
        await _redis.DisposeAsync();
        Directory.Delete(_data, recursive: true);
    }

    [Fact]
    public async Task KeysSpendAndTheAuditTrailSurviveARedisRestart()
    {
        var first = await StartGatewayAsync();
        using var admin = first.CreateClient(MasterKey);
        using var generated = await admin.PostAsync("/key/generate",
            GatewayHost.Json("""{"user_id":"durable","models":["manus-primary"],"rpm_limit":100}"""));
        Assert.Equal(HttpStatusCode.OK, generated.StatusCode);
        var key = (string)JsonNode.Parse(await generated.Content.ReadAsStringAsync())!["key"]!;
        using (var client = first.CreateClient(key))
        {
            for (var i = 0; i < 2; i++)
            {
                using var ok = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: i == 1)));
                Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
                await ok.Content.ReadAsStringAsync();
            }
        }
        // Spend and audit are written off the request path: both are in Redis before it restarts.
        await RedisWrites.WaitForAsync(_redis.ConnectionString, () => InfoAsync(first, key), info => (decimal?)info["info"]?["spend"] == 2 * CallCost,
            Deadline, "the key's spend of two calls", info => info.ToJsonString());
        var before = await RedisWrites.WaitForAsync(_redis.ConnectionString, () => AuditAsync(admin), records => records.Count >= 2,
            Deadline, "the two calls' audit records", records => $"{records.Count} records");
        Assert.Equal(2, before.Count);

        var port = _redis.Port;
        await _redis.ShutdownAsync(Deadline);
        _redis = await StartRedisAsync(port);
        // The first gateway saw Redis go; it asks it again once its connection is back.
        await first.Logs.WaitForAsync(r => r.EventId == 4011, Deadline);

        // The gateway that generated the key keeps none in memory (KeyCacheTtl 0: every request looks it up), and a
        // replica started now has never seen it: both find it, its spend and the trail in the restarted Redis.
        var second = await StartGatewayAsync();
        foreach (var gateway in new[] { first, second })
        {
            var info = await InfoAsync(gateway, key);
            Assert.Equal("durable", (string?)info["info"]!["user_id"]);
            Assert.Equal(["manus-primary"], info["info"]!["models"]!.AsArray().Select(m => (string?)m));
            Assert.Equal(100, (int?)info["info"]!["rpm_limit"]);
            Assert.Equal(2 * CallCost, (decimal?)info["info"]!["spend"]);
            using var gatewayAdmin = gateway.CreateClient(MasterKey);
            Assert.Equal(before.Select(r => (string?)r!["audit_id"]), (await AuditAsync(gatewayAdmin)).Select(r => (string?)r!["audit_id"]));
        }
        foreach (var gateway in new[] { first, second })
        {
            using var client = gateway.CreateClient(key);
            using var ok = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
    }

    private Task<RedisServerProcess> StartRedisAsync(int? port) =>
        RedisServerProcess.StartAsync(Deadline, port, _data, RedisPersistence.Arguments(RedisPersistence.EverySecond));

    private async Task<GatewayHost> StartGatewayAsync()
    {
        var gateway = await GatewayHost.StartAsync(new()
        {
            ["ConnectionStrings:redis"] = _redis.ConnectionString,
            ["LITELLM_MASTER_KEY"] = MasterKey,
            ["Onyx:Auth:KeyCacheTtl"] = "00:00:00",
            // A busy machine must not turn a slow Redis answer into a 503: durability is what this class tests.
            ["Onyx:Auth:RedisTimeout"] = "00:00:10",
            ["Onyx:RateLimits:RedisTimeout"] = "00:00:10",
            ["model_list:0:litellm_params:input_cost_per_million_tokens"] = "1.25",
            ["model_list:0:litellm_params:output_cost_per_million_tokens"] = "2.5",
        });
        _gateways.Add(gateway);
        return gateway;
    }

    /// <summary><c>/key/info</c> of <paramref name="key"/>, which must answer 200.</summary>
    private static async Task<JsonNode> InfoAsync(GatewayHost gateway, string key)
    {
        using var client = gateway.CreateClient(key);
        using var response = await client.GetAsync("/key/info");
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"/key/info: {(int)response.StatusCode} {body}");
        return JsonNode.Parse(body)!;
    }

    /// <summary>The trail's records of the user <c>durable</c>, newest first.</summary>
    private static async Task<List<JsonNode?>> AuditAsync(HttpClient admin)
    {
        using var response = await admin.GetAsync("/audit?user=durable");
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"/audit: {(int)response.StatusCode} {body}");
        return [.. JsonNode.Parse(body)!["data"]!.AsArray()];
    }
}
