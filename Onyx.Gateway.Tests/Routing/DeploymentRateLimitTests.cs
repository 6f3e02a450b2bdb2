using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Onyx.Gateway.Model;
using Onyx.Gateway.Providers;
using Onyx.Gateway.Routing;
using Onyx.Gateway.Tests.TestHost;
using StackExchange.Redis;

namespace Onyx.Gateway.Tests.Routing;

/// <summary>
/// A deployment's <c>litellm_params.rpm</c>/<c>tpm</c> (LiteLLM's per-deployment limits), in one replica: at its
/// limit in the current minute it is skipped like an overloaded one, and the next minute it takes calls again.
/// </summary>
public sealed class DeploymentRateLimitTests
{
    // Limits are counted per UTC minute: nothing here crosses into the next one unless a test moves the clock a minute.
    private readonly FakeTimeProvider _time = TestClock.Create();

    private Task<GatewayHost> StartAsync(Dictionary<string, string?> settings) =>
        GatewayHost.StartAsync(settings, services => services.AddSingleton<TimeProvider>(_time));

    [Fact]
    public async Task TheThirdRequestInTheMinuteGoesToTheFallbackWhenThePrimaryHasRpm2()
    {
        await using var gateway = await StartAsync(new() { ["model_list:0:litellm_params:rpm"] = "2" });
        using var client = gateway.CreateClient();

        var deployments = new List<string?>();
        for (var i = 0; i < 3; i++)
        {
            using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            deployments.Add(OpenAiResponses.Header(response, "x-onyx-deployment"));
        }

        Assert.Equal(["together_ai/deepseek-ai/DeepSeek-V3", "together_ai/deepseek-ai/DeepSeek-V3", "ollama/mistral:7b-instruct"], deployments);
        Assert.Equal(2, gateway.Primary.Calls);

        _time.Advance(TimeSpan.FromMinutes(1));
        using var nextMinute = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal("together_ai/deepseek-ai/DeepSeek-V3", OpenAiResponses.Header(nextMinute, "x-onyx-deployment"));
    }

    [Fact]
    public async Task WhenEveryDeploymentsMinuteIsFullTheClientGets503NamingTheLimit()
    {
        await using var gateway = await StartAsync(new()
        {
            ["model_list:0:litellm_params:rpm"] = "1",
            ["model_list:1:litellm_params:rpm"] = "1",
        });
        using var client = gateway.CreateClient();
        (await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()))).Dispose();
        (await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()))).Dispose();

        using var refused = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));

        var error = await OpenAiResponses.ErrorOf(refused, HttpStatusCode.ServiceUnavailable);
        Assert.Equal("no_deployment_available", (string?)error["code"]);
        Assert.Contains("together_ai/deepseek-ai/DeepSeek-V3 (rpm limit reached (1 requests a minute))", (string?)error["message"]);
        Assert.Contains("ollama/mistral:7b-instruct (rpm limit reached (1 requests a minute))", (string?)error["message"]);
        Assert.Equal("1", OpenAiResponses.Header(refused, "Retry-After"));
        Assert.Equal(1, gateway.Primary.Calls);
        Assert.Equal(1, gateway.Fallback.Calls);
    }

    [Fact]
    public async Task ADeploymentWhoseMinuteHasNoRoomForThePromptsTokensIsSkipped()
    {
        // The fake reports 12 prompt + 4 completion tokens a call; "Say hello" is about 9 prompt tokens.
        await using var gateway = await StartAsync(new() { ["model_list:0:litellm_params:tpm"] = "20" });
        using var client = gateway.CreateClient();

        using var first = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        using var second = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));

        Assert.Equal("together_ai/deepseek-ai/DeepSeek-V3", OpenAiResponses.Header(first, "x-onyx-deployment"));
        Assert.Equal("ollama/mistral:7b-instruct", OpenAiResponses.Header(second, "x-onyx-deployment"));
        Assert.Equal(1, gateway.Primary.Calls);
    }

    [Fact]
    public void SimpleShuffleWeightsAnAliassDeploymentsByRpmAsLiteLlmDoes()
    {
        var heavy = Deployment("heavy", rpm: 90);
        var light = Deployment("light", rpm: 10);
        var unlimited = Deployment("unlimited", rpm: null);
        var random = new Random(29);
        var firsts = new Dictionary<string, int> { ["heavy"] = 0, ["light"] = 0, ["unlimited"] = 0 };
        var lastIsUnweighted = 0;

        for (var i = 0; i < 1000; i++)
        {
            var order = Failover.Shuffle([light, unlimited, heavy], random);
            firsts[order[0].Id]++;
            lastIsUnweighted += order[^1] == unlimited ? 1 : 0;
        }

        // LiteLLM looks at the first deployment: it has an rpm, so rpm weighs every one (none counts as 0).
        Assert.InRange(firsts["heavy"], 850, 950);
        Assert.Equal(0, firsts["unlimited"]);
        Assert.Equal(1000, lastIsUnweighted);
    }

    private static Deployment Deployment(string id, int? rpm) => new()
    {
        Id = id,
        Alias = "a",
        Provider = ProviderCatalog.ByPrefix["openai"],
        ProviderModel = id,
        ApiBase = new Uri("http://127.0.0.1:9/v1"),
        Rpm = rpm,
    };
}

/// <summary>The same limits across replicas sharing one Redis, and while that Redis is gone.</summary>
public sealed class SharedDeploymentRateLimitTests : ReplicasOnOneRedis
{
    private readonly FakeTimeProvider _time = TestClock.Create();

    // Every Redis answer is awaited (a loaded test machine answers slower than the 50 ms bound): what is tested is that
    // the count is shared, not how long a replica waits for it.
    protected override Dictionary<string, string?> ReplicaSettings => new()
    {
        ["model_list:0:litellm_params:rpm"] = "2",
        ["Onyx:Routing:DeploymentLimitRedisTimeout"] = "00:00:10",
    };

    private Task<GatewayHost> StartReplicaAsync() => StartReplicaAsync(services: services => services.AddSingleton<TimeProvider>(_time));

    [Fact]
    public async Task TwoReplicasCountThePrimarysRequestsTogether()
    {
        var a = await StartReplicaAsync();
        var b = await StartReplicaAsync();
        using var onA = a.CreateClient();
        using var onB = b.CreateClient();

        using var first = await onA.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        using var second = await onB.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        using var third = await onA.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));

        Assert.Equal("together_ai/deepseek-ai/DeepSeek-V3", OpenAiResponses.Header(first, "x-onyx-deployment"));
        Assert.Equal("together_ai/deepseek-ai/DeepSeek-V3", OpenAiResponses.Header(second, "x-onyx-deployment"));
        Assert.Equal("ollama/mistral:7b-instruct", OpenAiResponses.Header(third, "x-onyx-deployment"));
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        // The counter of the clock's UTC minute (yyyyMMddHHmm).
        var key = (RedisKey)("onyx:deployment:{together_ai/deepseek-ai/DeepSeek-V3}:rpm:"
            + TestClock.Start.UtcDateTime.ToString("yyyyMMddHHmm", System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(3, (int)await redis.GetDatabase().StringGetAsync(key));
        Assert.InRange((await redis.GetDatabase().KeyTimeToLiveAsync(key))!.Value, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(120));
    }

    [Fact]
    public async Task WhileRedisIsGoneEachReplicaCountsInMemoryAndRoutingGoesOn()
    {
        var a = await StartReplicaAsync();
        using var client = a.CreateClient();
        await Redis.DisposeAsync();

        var deployments = new List<string?>();
        for (var i = 0; i < 3; i++)
        {
            using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            deployments.Add(OpenAiResponses.Header(response, "x-onyx-deployment"));
        }

        Assert.Equal(["together_ai/deepseek-ai/DeepSeek-V3", "together_ai/deepseek-ai/DeepSeek-V3", "ollama/mistral:7b-instruct"], deployments);
        Assert.Single(a.Logs.Records, r => r.EventId == 1030);
    }
}
