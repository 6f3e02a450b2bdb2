using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Onyx.Gateway.Health;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.RateLimiting;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Health;

/// <summary>
/// <c>/health</c> is readiness, and readiness means "can serve": a Redis outage (which every replica shares) leaves it
/// 200 Degraded with the reason, so load balancers keep every replica while each serves on its fallbacks; only a
/// replica that cannot answer at all (no deployment it could ever call, or shutting down) says 503.
/// </summary>
public sealed class ReadinessTests : ReplicasOnOneRedis
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    /// <summary>Every check <c>/health</c> runs on a replica with Redis; Aspire's own Redis check is not among them.</summary>
    private static readonly string[] ChecksWithRedis = ["audit", "breakers", "deployments", "keys", "rate-limits", "redis", "replica", "self", "shutdown"];

    /// <summary>The checks that fall back while Redis is away, each of which must say so.</summary>
    private static readonly string[] FallingBack = ["audit", "breakers", "keys", "rate-limits", "redis", "replica"];

    protected override Dictionary<string, string?> ReplicaSettings => new()
    {
        ["LITELLM_MASTER_KEY"] = TestKeys.MasterKey,
        ["Onyx:Redis:PingInterval"] = "00:00:00.100",
        ["Onyx:Audit:RetryInterval"] = "00:00:00.100",
    };

    [Fact]
    public async Task RedisDownIsDegradedNamingRedisWhileEveryRequestStillAnswersAndRedisBackIsHealthyWithoutARestart()
    {
        var gateway = await StartReplicaAsync();
        using var master = gateway.CreateClient(TestKeys.MasterKey);
        // A key this replica has used (so it has it cached), and one it has never seen.
        using var cached = gateway.CreateClient(await TestKeys.GenerateAsync(gateway, """{"user_id":"seen"}"""));
        using var unseen = gateway.CreateClient(await TestKeys.GenerateAsync(gateway, """{"user_id":"unseen"}"""));
        await AssertChatAnswersAsync(cached);
        var before = await HealthAsync(master, HttpStatusCode.OK);
        Assert.Equal("Healthy", (string?)before["status"]);
        Assert.Equal(ChecksWithRedis, before["checks"]!.AsObject().Select(c => c.Key).Order(StringComparer.Ordinal));

        var port = Redis.Port;
        await Redis.DisposeAsync();
        await gateway.Logs.WaitForAsync(r => r.EventId == 4010, Deadline);

        await AssertChatAnswersAsync(master);
        await AssertChatAnswersAsync(cached);
        using (var refused = await unseen.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            Assert.Equal("key_store_unavailable", (string?)(await OpenAiResponses.ErrorOf(refused, HttpStatusCode.ServiceUnavailable))["code"]);
        }
        var down = await HealthAsync(master, HttpStatusCode.OK);
        Assert.Equal("Degraded", (string?)down["status"]);
        var checks = down["checks"]!;
        Assert.StartsWith("Redis is unreachable (", (string?)checks["redis"]!["description"], StringComparison.Ordinal);
        Assert.Equal("down", (string?)checks["redis"]!["data"]!["state"]);
        foreach (var name in FallingBack)
        {
            Assert.Equal("Degraded", (string?)checks[name]!["status"]);
            Assert.Contains("Redis is unreachable", (string?)checks[name]!["description"], StringComparison.Ordinal);
        }
        Assert.Equal("Healthy", (string?)checks["deployments"]!["status"]);
        Assert.Equal("Healthy", (string?)checks["shutdown"]!["status"]);
        using (var alive = await master.GetAsync("/alive"))
        {
            Assert.Equal(HttpStatusCode.OK, alive.StatusCode);
        }

        Redis = await RedisServerProcess.StartAsync(Deadline, port);
        await gateway.Logs.WaitForAsync(r => r.EventId == 4011, Deadline);
        // The records of the calls made meanwhile were spilled; healthy once they are replayed.
        await gateway.Logs.WaitForAsync(r => r.EventId == 8002, Deadline);

        var back = await HealthAsync(master, HttpStatusCode.OK);
        Assert.Equal("Healthy", (string?)back["status"]);
        Assert.All(back["checks"]!.AsObject(), check => Assert.Equal("Healthy", (string?)check.Value!["status"]));
        Assert.Equal("up", (string?)back["checks"]!["redis"]!["data"]!["state"]);
        Assert.Single(gateway.Logs.Records, r => r.EventId == 4010);
        Assert.Single(gateway.Logs.Records, r => r.EventId == 4011);
    }

    [Fact]
    public async Task AGatewayStartedWithoutRedisIsReadyAndDegraded()
    {
        await Redis.DisposeAsync();
        var gateway = await StartReplicaAsync();
        using var client = gateway.CreateClient(TestKeys.MasterKey);

        var health = await HealthAsync(client, HttpStatusCode.OK);

        Assert.Equal("Degraded", (string?)health["status"]);
        Assert.Equal("Redis is unreachable (not connected since the gateway started): rate limits, keys, circuit breakers, audit and replica registration run on their fallbacks until it answers.",
            (string?)health["checks"]!["redis"]!["description"]);
        await AssertChatAnswersAsync(client);
    }

    [Fact]
    public async Task NoDeploymentThatCouldEverBeCalledIs503()
    {
        // No Together AI key, and the AppHost reports Ollama not running: nothing this replica could send a chat to.
        await using var gateway = await GatewayHost.StartAsync(new() { ["TOGETHER_API_KEY"] = "", ["Onyx:UnavailableServices"] = "ollama" });
        using var client = gateway.CreateClient();

        var health = await HealthAsync(client, HttpStatusCode.ServiceUnavailable);

        Assert.Equal("Unhealthy", (string?)health["status"]);
        var deployments = health["checks"]!["deployments"]!;
        Assert.Equal("Unhealthy", (string?)deployments["status"]);
        Assert.StartsWith("No deployment can take traffic", (string?)deployments["description"], StringComparison.Ordinal);
        Assert.Contains("TOGETHER_API_KEY", (string?)deployments["data"]!["together_ai/deepseek-ai/DeepSeek-V3"], StringComparison.Ordinal);
        Assert.Contains("service 'ollama' is not running", (string?)deployments["data"]!["ollama/mistral:7b-instruct"], StringComparison.Ordinal);
        using var alive = await client.GetAsync("/alive");
        Assert.Equal(HttpStatusCode.OK, alive.StatusCode);
    }

    [Fact]
    public async Task EveryBreakerOpenIsDegradedNot503()
    {
        await using var gateway = await GatewayHost.StartAsync();
        using var client = gateway.CreateClient();
        gateway.Primary.Fault = FakeFault.Status(500);
        gateway.Fallback.Fault = FakeFault.Status(500);

        // Each request fails on both deployments; a few open both breakers.
        JsonNode health = null!;
        for (var i = 0; i < 10; i++)
        {
            using (var failed = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.StatusCode);
            }
            health = await HealthAsync(client, HttpStatusCode.OK);
            if (health["checks"]!["deployments"]!["data"]!.AsObject().All(d => ((string?)d.Value)!.StartsWith("circuit open", StringComparison.Ordinal)))
            {
                break;
            }
        }

        Assert.All(health["checks"]!["deployments"]!["data"]!.AsObject(), d => Assert.StartsWith("circuit open until", (string?)d.Value, StringComparison.Ordinal));
        Assert.Equal("Degraded", (string?)health["checks"]!["deployments"]!["status"]);
        Assert.Equal("Degraded", (string?)health["status"]);
    }

    [Fact]
    public async Task OnlyAReadinessCheckCanMakeHealth503WhateverTheOthersReturnOrThrow()
    {
        var gateFails = false;
        await using var gateway = await GatewayHost.StartAsync(services: services => services.AddHealthChecks()
            .AddCheck("test-unhealthy", () => HealthCheckResult.Unhealthy("a dependency with a fallback is down"))
            .AddCheck("test-throws", () => throw new InvalidOperationException("the check itself broke"))
            .AddCheck("test-gate", () => gateFails ? HealthCheckResult.Unhealthy("cannot serve") : HealthCheckResult.Healthy(), [Readiness.ReadyTag]));
        using var client = gateway.CreateClient();

        var serving = await HealthAsync(client, HttpStatusCode.OK);
        Assert.Equal("Degraded", (string?)serving["status"]);
        Assert.Equal("Degraded", (string?)serving["checks"]!["test-unhealthy"]!["status"]);
        Assert.Equal("a dependency with a fallback is down", (string?)serving["checks"]!["test-unhealthy"]!["description"]);
        Assert.Equal("Degraded", (string?)serving["checks"]!["test-throws"]!["status"]);

        gateFails = true;
        var notServing = await HealthAsync(client, HttpStatusCode.ServiceUnavailable);
        Assert.Equal("Unhealthy", (string?)notServing["status"]);
        Assert.Equal("Unhealthy", (string?)notServing["checks"]!["test-gate"]!["status"]);
    }

    private static async Task AssertChatAnswersAsync(HttpClient client)
    {
        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
    }

    private static async Task<JsonNode> HealthAsync(HttpClient client, HttpStatusCode expected)
    {
        using var response = await client.GetAsync("/health");
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"/health answered {(int)response.StatusCode}, not {(int)expected}: {body}");
        return JsonNode.Parse(body)!;
    }
}
