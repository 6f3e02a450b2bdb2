using System.Net;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Routing;

/// <summary>
/// <c>router_settings.enable_pre_call_checks</c> with <c>model_info.max_input_tokens</c>: a deployment the prompt does
/// not fit is skipped before it is called, with the reason; without the key, it is called, as in LiteLLM.
/// </summary>
public sealed class PreCallCheckTests
{
    /// <summary>About 600 tokens: far over the 100 the small deployment takes.</summary>
    private static readonly string LongPrompt = string.Join(' ', Enumerable.Repeat("the quick brown fox jumps over the lazy dog", 60));

    private static string Body(string prompt) =>
        $$"""{"model":"manus-primary","messages":[{"role":"user","content":"{{prompt}}"}]}""";

    [Fact]
    public async Task ALongPromptSkipsTheSmallContextDeploymentWithoutCallingIt()
    {
        await using var gateway = await GatewayHost.StartAsync(new()
        {
            ["router_settings:enable_pre_call_checks"] = "true",
            ["model_list:0:model_info:max_input_tokens"] = "100",
        });
        using var client = gateway.CreateClient();

        using var longOne = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(Body(LongPrompt)));
        using var shortOne = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(Body("Say hello")));

        Assert.Equal(HttpStatusCode.OK, longOne.StatusCode);
        Assert.Equal("ollama/mistral:7b-instruct", OpenAiResponses.Header(longOne, "x-onyx-deployment"));
        Assert.Equal("together_ai/deepseek-ai/DeepSeek-V3", OpenAiResponses.Header(shortOne, "x-onyx-deployment"));
        Assert.Equal(1, gateway.Primary.Calls);
    }

    [Fact]
    public async Task ASkippedPromptGoesToTheAliassContextWindowFallbacksNotItsOrdinaryOnes()
    {
        await using var longContext = await FakeOpenAiProvider.StartAsync(new FakeBehavior { Models = ["long"] });
        await using var gateway = await GatewayHost.StartAsync(new()
        {
            ["router_settings:enable_pre_call_checks"] = "true",
            ["model_list:0:model_info:max_input_tokens"] = "100",
            ["model_list:2:model_name"] = "long-context",
            ["model_list:2:litellm_params:model"] = "openai/long",
            ["model_list:2:litellm_params:api_base"] = longContext.BaseUrl.ToString(),
            ["router_settings:context_window_fallbacks:0:manus-primary:0"] = "long-context",
        });
        using var client = gateway.CreateClient();

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(Body(LongPrompt)));

        Assert.Equal("openai/long", OpenAiResponses.Header(response, "x-onyx-deployment"));
        Assert.Equal(0, gateway.Primary.Calls);
        Assert.Equal(0, gateway.Fallback.Calls);
    }

    [Fact]
    public async Task WithoutPreCallChecksTheDeploymentIsCalledWhateverItsContextWindow()
    {
        await using var gateway = await GatewayHost.StartAsync(new() { ["model_list:0:model_info:max_input_tokens"] = "100" });
        using var client = gateway.CreateClient();

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(Body(LongPrompt)));

        Assert.Equal("together_ai/deepseek-ai/DeepSeek-V3", OpenAiResponses.Header(response, "x-onyx-deployment"));
        Assert.Equal(1, gateway.Primary.Calls);
    }

    [Fact]
    public async Task APromptNoDeploymentFitsIsTheClientsToShortenAndNamesTheLimits()
    {
        await using var gateway = await GatewayHost.StartAsync(new()
        {
            ["router_settings:enable_pre_call_checks"] = "true",
            ["model_list:0:model_info:max_input_tokens"] = "100",
            ["model_list:1:model_info:max_input_tokens"] = "200",
        });
        using var client = gateway.CreateClient();

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(Body(LongPrompt)));

        var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.BadRequest);
        Assert.Equal("context_length_exceeded", (string?)error["code"]);
        var message = (string)error["message"]!;
        Assert.Contains("does not fit model_info.max_input_tokens (100)", message);
        Assert.Contains("does not fit model_info.max_input_tokens (200)", message);
        Assert.Equal(0, gateway.Primary.Calls);
        Assert.Equal(0, gateway.Fallback.Calls);
    }
}
