using System.Net;
using System.Text.Json.Nodes;
using System.Text.Json;
using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Providers;

/// <summary>
/// Provider-specific sampling parameters (<c>top_k</c>, <c>min_p</c>, <c>repetition_penalty</c>, …): passed as sent to
/// a provider that takes them, translated into Ollama's options, and never silently lost on one that does not — the
/// deployment is skipped, or with <c>drop_params</c> called without them.
/// </summary>
public sealed class ProviderParametersTests
{
    private const string Sampling = ""","top_k":40,"min_p":0.05,"repetition_penalty":1.1""";

    [Fact]
    public async Task TogetherGetsThemAsTheClientSentThem()
    {
        await using var gateway = await GatewayHost.StartAsync();
        using var client = gateway.CreateClient();

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(extra: Sampling)));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var sent = gateway.Primary.LastRequest!.Json!;
        Assert.Equal(40, (int)sent["top_k"]!);
        Assert.Equal(0.05, (double)sent["min_p"]!);
        Assert.Equal(1.1, (double)sent["repetition_penalty"]!);
    }

    [Fact]
    public async Task OllamaGetsThemInItsOptionsUnderItsOwnNames()
    {
        await using var gateway = await GatewayHost.StartAsync();
        using var client = gateway.CreateClient();

        using var response = await client.PostAsync("/v1/chat/completions",
            GatewayHost.Json(GatewayHost.ChatBody("manus-fallback", extra: Sampling + ""","typical_p":0.9""")));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var sent = gateway.Fallback.LastRequest!.Json!;
        var options = sent["options"]!;
        Assert.Equal(40, (int)options["top_k"]!);
        Assert.Equal(0.05, (double)options["min_p"]!);
        Assert.Equal(1.1, (double)options["repeat_penalty"]!);
        Assert.Equal(0.9, (double)options["typical_p"]!);
        Assert.Null(options["repetition_penalty"]);
        Assert.Null(sent["top_k"]);
    }

    [Fact]
    public async Task AnOpenAiDeploymentIsSkippedForTopKRatherThanCalledWithoutIt()
    {
        await using var gateway = await OpenAiFallbackGateway.StartAsync("openai");
        using var client = gateway.Gateway.CreateClient();

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody("manus-fallback", extra: ""","top_k":40""")));

        var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.BadRequest);
        Assert.Equal("unsupported_by_deployments", (string?)error["code"]);
        Assert.Contains("openai/ does not take top_k", (string?)error["message"]);
        Assert.Equal(0, gateway.Fallback.Calls);
    }

    [Fact]
    public async Task WithDropParamsTheOpenAiDeploymentIsCalledWithoutTopKAndTheDropIsLogged()
    {
        await using var gateway = await OpenAiFallbackGateway.StartAsync("openai", settings: new()
        {
            ["litellm_settings:drop_params"] = "true",
            ["Logging:LogLevel:Onyx.Gateway.Routing"] = "Debug",
        });
        using var client = gateway.Gateway.CreateClient();

        using var response = await client.PostAsync("/v1/chat/completions",
            GatewayHost.Json(GatewayHost.ChatBody("manus-fallback", extra: ""","top_k":40,"temperature":0.3""")));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var sent = gateway.Fallback.LastRequest!.Json!.AsObject();
        Assert.False(sent.ContainsKey("top_k"));
        Assert.Equal(0.3, (double)sent["temperature"]!);
        var dropped = Assert.Single(gateway.Gateway.Logs.Records, r => r.EventId == 1020);
        Assert.Equal("top_k", dropped["Parameters"]);
        Assert.Equal("openai/fallback-model", dropped["Deployment"]);
    }

    [Fact]
    public async Task TopAIsTakenByNoProviderSoEveryDeploymentIsSkippedWithTheReason()
    {
        // top_a: OpenRouter's, taken by none of the gateway's providers.
        await using var gateway = await GatewayHost.StartAsync();
        using var client = gateway.CreateClient();

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(extra: ""","top_a":0.2""")));

        var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.BadRequest);
        Assert.Contains("together_ai/ does not take top_a", (string?)error["message"]);
        Assert.Contains("ollama/ does not take top_a", (string?)error["message"]);
        Assert.Equal(0, gateway.Primary.Calls + gateway.Fallback.Calls);
    }

    [Theory]
    [InlineData("\"top_k\":\"forty\"", "top_k")]
    [InlineData("\"min_p\":1.5", "min_p")]
    [InlineData("\"repetition_penalty\":-1", "repetition_penalty")]
    public void AValueNoServerWouldTakeIsTheClientsError(string field, string name)
    {
        var body = JsonElement.Parse($$"""{"model":"m","messages":[{"role":"user","content":"hi"}],{{field}}}""");

        Assert.False(ChatRequest.TryParse(body, out _, out var error));
        Assert.Equal(name, error.Param);
    }

    [Fact]
    public void TheRequestKnowsWhichItCarries()
    {
        var body = JsonElement.Parse("""{"model":"m","messages":[{"role":"user","content":"hi"}],"top_k":5,"typical_p":0.5,"top_p":0.9}""");

        Assert.True(ChatRequest.TryParse(body, out var request, out _));
        Assert.Equal(ProviderParameters.TopK | ProviderParameters.TypicalP, request.ProviderParameters);
    }
}
