using System.Net;
using System.Text.Json.Nodes;
using Onyx.Gateway.Model;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Spend;

/// <summary>
/// Cost per call from the config's price table: in the call log, and summed per key in <c>/key/info</c> across the
/// replicas of one Redis.
/// </summary>
public sealed class SpendTests : ReplicasOnOneRedis
{
    private const string MasterKey = "sk-master-spend-8e21f0";

    /// <summary>12 prompt tokens at $1.25/M and 4 completion tokens at $2.50/M (the fake's usage report).</summary>
    private static readonly decimal CallCost = 12 * 1.25m / 1_000_000 + FakeBehavior.DefaultTokens.Count * 2.5m / 1_000_000;

    protected override Dictionary<string, string?> ReplicaSettings => new()
    {
        ["LITELLM_MASTER_KEY"] = MasterKey,
        ["model_list:0:litellm_params:input_cost_per_million_tokens"] = "1.25",
        ["model_list:0:litellm_params:output_cost_per_million_tokens"] = "2.5",
    };

    [Fact]
    public async Task KeyInfoShowsTheSpendOfTheKeysCallsOnEveryReplica()
    {
        var first = await StartReplicaAsync();
        var second = await StartReplicaAsync();
        using var admin = first.CreateClient(MasterKey);
        using var generated = await admin.PostAsync("/key/generate", GatewayHost.Json("""{"user_id":"team-spend"}"""));
        var key = (string)JsonNode.Parse(await generated.Content.ReadAsStringAsync())!["key"]!;
        using var other = admin.PostAsync("/key/generate", GatewayHost.Json("{}"));

        using var onFirst = first.CreateClient(key);
        using var onSecond = second.CreateClient(key);
        foreach (var (client, stream) in new[] { (onFirst, false), (onFirst, true), (onSecond, false) })
        {
            using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: stream)));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await response.Content.ReadAsStringAsync();
        }

        var call = await first.Logs.WaitForAsync(r => r.Category == "Onyx.CallLog" && r.EventId == 3001, TimeSpan.FromSeconds(10));
        Assert.Equal(CallCost, call["costUsd"]);

        // Spend is written to Redis off the request path: read again on each write until both replicas' calls are in.
        var spend = await RedisWrites.WaitForAsync(Redis.ConnectionString, async () =>
        {
            using var info = await onSecond.GetAsync("/key/info");
            Assert.Equal(HttpStatusCode.OK, info.StatusCode);
            return (decimal)JsonNode.Parse(await info.Content.ReadAsStringAsync())!["info"]!["spend"]!;
        }, spend => spend == 3 * CallCost, TimeSpan.FromSeconds(10), "the spend of three calls", spend => $"{spend} USD");
        Assert.Equal(3 * CallCost, spend);

        // Another key has spent nothing.
        var otherKey = (string)JsonNode.Parse(await (await other).Content.ReadAsStringAsync())!["key"]!;
        using var otherInfo = await first.CreateClient(otherKey).GetAsync("/key/info");
        Assert.Equal(0m, (decimal)JsonNode.Parse(await otherInfo.Content.ReadAsStringAsync())!["info"]!["spend"]!);
    }

    [Fact]
    public async Task CachedPromptTokensCostTheCacheReadPrice()
    {
        var gateway = await StartReplicaAsync(new() { ["model_list:0:model_info:cache_read_input_token_cost"] = "0.00000025" });
        // Of the 12 prompt tokens, 8 come from the provider's prompt cache.
        gateway.Primary.Update(b => b with { CachedPromptTokens = 8 });
        using var admin = gateway.CreateClient(MasterKey);

        foreach (var stream in new[] { false, true })
        {
            using var response = await admin.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: stream)));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await response.Content.ReadAsStringAsync();
        }

        await gateway.Logs.WaitForAsync(_ => gateway.Logs.Records.Count(r => r.Category == "Onyx.CallLog" && r.EventId == 3001) == 2, TimeSpan.FromSeconds(10));
        var expected = 4 * 1.25m / 1_000_000 + 8 * 0.25m / 1_000_000 + FakeBehavior.DefaultTokens.Count * 2.5m / 1_000_000;
        Assert.All(gateway.Logs.Records.Where(r => r.Category == "Onyx.CallLog" && r.EventId == 3001), call => Assert.Equal(expected, call["costUsd"]));
    }

    [Fact]
    public async Task AResumedStreamCostsEachAttemptWhatItsOwnDeploymentCharges()
    {
        IReadOnlyList<string> story = ["Once", " upon", " a", " time", " there", " was"];
        var gateway = await StartReplicaAsync(new()
        {
            ["model_list:1:litellm_params:output_cost_per_million_tokens"] = "25",
            ["Onyx:Routing:StreamIdleTimeout"] = "00:00:00.500",
        });
        gateway.Primary.Update(b => b with { Tokens = story, Fault = FakeFault.DropAfter(2) });
        gateway.Fallback.Update(b => b with { Tokens = story, Continuation = FakeContinuation.Honours });
        using var admin = gateway.CreateClient(MasterKey);

        using var response = await admin.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        Assert.Equal(StreamOutcome.Whole, AnswerIntegrity.Check(await response.Content.ReadAsStringAsync(), string.Concat(story)));

        var call = await gateway.Logs.WaitForAsync(r => r.Category == "Onyx.CallLog" && r.EventId == 3001, TimeSpan.FromSeconds(10));
        // The primary was cut after "Once upon" without reporting usage: its prompt and those words, counted by the
        // gateway, at the primary's price. The fallback wrote the other five tokens (it reports them) at its own.
        var estimator = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<Onyx.Gateway.Model.TokenEstimator>(gateway.Services);
        using var messages = System.Text.Json.JsonDocument.Parse("""[{"role":"user","content":"Say hello"}]""");
        var primary = estimator.CountPrompt(messages.RootElement) * 1.25m / 1_000_000 + estimator.Count("Once upon") * 2.5m / 1_000_000;
        var fallback = 5 * 25m / 1_000_000;
        Assert.Equal(primary + fallback, call["costUsd"]);
    }

    [Fact]
    public async Task ACallThatFailedBeforeAnyTokenCostsNothing()
    {
        // The fallback has a price too: the record names the last deployment tried.
        var gateway = await StartReplicaAsync(new() { ["model_list:1:model_info:input_cost_per_token"] = "0.000001" });
        gateway.Primary.Fault = FakeFault.Status(500);
        gateway.Fallback.Fault = FakeFault.Status(500);
        using var admin = gateway.CreateClient(MasterKey);
        using var response = await admin.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);

        var call = await gateway.Logs.WaitForAsync(r => r.Category == "Onyx.CallLog" && r.EventId == 3001, TimeSpan.FromSeconds(10));
        Assert.Equal(0m, call["costUsd"]);
    }
}
