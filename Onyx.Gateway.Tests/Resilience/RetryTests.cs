using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Onyx.Gateway.Resilience;
using Onyx.Gateway.Tests.Api;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Resilience;

/// <summary>The retry and fallback policy, one failure class at a time (README, "Retry and fallback policy").</summary>
public sealed class RetryTests
{
    private static Dictionary<string, string> RetryAfter(string seconds) => new() { ["Retry-After"] = seconds };

    [Fact]
    public async Task WaitsOutAShortRetryAfterAndAsksTheSameDeploymentAgain()
    {
        await using var gateway = await GatewayHost.StartAsync();
        using var client = gateway.CreateClient();
        gateway.Primary.FailNext(1, FakeFault.Status(429, headers: RetryAfter("2")));
        var clock = Stopwatch.StartNew();

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(1.8), $"answered after {clock.Elapsed}");
        Assert.Equal("false", Headers.Get(response, "x-onyx-fallback"));
        Assert.Equal("2", Headers.Get(response, "x-onyx-attempts"));
        Assert.Equal(2, gateway.Primary.Calls);
        Assert.Equal(0, gateway.Fallback.Calls);
    }

    [Fact]
    public async Task ReadsOpenAisRetryAfterMs()
    {
        await using var gateway = await GatewayHost.StartAsync();
        using var client = gateway.CreateClient();
        gateway.Primary.FailNext(1, FakeFault.Status(429, headers: new Dictionary<string, string> { ["retry-after-ms"] = "400" }));
        var clock = Stopwatch.StartNew();

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));

        Assert.Equal("false", Headers.Get(response, "x-onyx-fallback"));
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(350), $"answered after {clock.Elapsed}");
        Assert.Equal(2, gateway.Primary.Calls);
    }

    [Fact]
    public async Task AProvidersLongRetryAfterRestsTheDeploymentExactlyThatLongAndTheFallbackAnswersAtOnce()
    {
        var time = TestClock.Create();
        await using var gateway = await GatewayHost.StartAsync(services: s => s.AddSingleton<TimeProvider>(time));
        using var client = gateway.CreateClient();
        gateway.Primary.FailNext(1, FakeFault.Status(429, headers: RetryAfter("7")));

        using var limited = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        // Longer than the gateway waits (3 s): the provider's limit is not the client's fault, the fallback serves it.
        Assert.Equal(HttpStatusCode.OK, limited.StatusCode);
        Assert.Equal("true", Headers.Get(limited, "x-onyx-fallback"));

        time.Advance(TimeSpan.FromSeconds(7) - TimeSpan.FromMilliseconds(1));
        using var resting = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal("true", Headers.Get(resting, "x-onyx-fallback"));
        Assert.Equal(1, gateway.Primary.Calls);

        time.Advance(TimeSpan.FromMilliseconds(1));
        using var back = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal("false", Headers.Get(back, "x-onyx-fallback"));
        Assert.Equal(2, gateway.Primary.Calls);
        Assert.Equal(2, gateway.Fallback.Calls);
    }

    [Theory]
    [InlineData("502")]
    [InlineData("reset")]
    [InlineData("malformed")]
    public async Task RetriesAFailureBeforeAnythingWasSentOnceOnTheSameDeployment(string fault)
    {
        await using var gateway = await GatewayHost.StartAsync();
        using var client = gateway.CreateClient();
        gateway.Primary.FailNext(1, fault switch
        {
            "502" => FakeFault.Status(502),
            "reset" => FakeFault.DropAfter(0),
            _ => FakeFault.MalformedChunk,
        });

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("false", Headers.Get(response, "x-onyx-fallback"));
        Assert.Equal("2", Headers.Get(response, "x-onyx-attempts"));
        Assert.Equal(StreamOutcome.Whole, AnswerIntegrity.Check(await response.Content.ReadAsStringAsync(), gateway.Primary.ExpectedText));
        Assert.Equal(0, gateway.Fallback.Calls);
    }

    [Fact]
    public async Task GivesOneDeploymentAtMostTwoAttemptsWithinOneAndAHalfSeconds()
    {
        await using var gateway = await GatewayHost.StartAsync(new() { ["router_settings:num_retries"] = "5" });
        using var client = gateway.CreateClient();
        gateway.Primary.Fault = FakeFault.Status(500);

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));

        Assert.Equal("true", Headers.Get(response, "x-onyx-fallback"));
        Assert.Equal(2, gateway.Primary.Calls);
    }

    [Fact]
    public async Task FailsOverInsteadOfRetryingPastTheRetryDeadline()
    {
        await using var gateway = await GatewayHost.StartAsync(new() { ["Onyx:Routing:RetryDeadline"] = "00:00:00" });
        using var client = gateway.CreateClient();
        gateway.Primary.FailNext(1, FakeFault.Status(500));

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));

        Assert.Equal("true", Headers.Get(response, "x-onyx-fallback"));
        Assert.Equal(1, gateway.Primary.Calls);
    }

    [Fact]
    public async Task RetryPolicySetsTheRetriesOfOneClass()
    {
        await using var gateway = await GatewayHost.StartAsync(new() { ["router_settings:retry_policy:InternalServerErrorRetries"] = "0" });
        using var client = gateway.CreateClient();
        gateway.Primary.FailNext(1, FakeFault.Status(500));

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));

        Assert.Equal("true", Headers.Get(response, "x-onyx-fallback"));
        Assert.Equal(1, gateway.Primary.Calls);
    }

    [Fact]
    public async Task SendsAPromptTooLongForOneModelToTheNextDeploymentAndNeverAgainToTheSame()
    {
        await using var gateway = await GatewayHost.StartAsync();
        using var client = gateway.CreateClient();
        gateway.Primary.Fault = FakeFault.Status(400, FakeOpenAiProvider.ErrorBody(
            "This model's maximum context length is 65536 tokens. However, your messages resulted in 70000 tokens.", param: "messages", code: "context_length_exceeded"));

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("ollama/mistral:7b-instruct", Headers.Get(response, "x-onyx-deployment"));
        Assert.Equal(1, gateway.Primary.Calls);
        Assert.Equal(1, gateway.Fallback.Calls);
    }

    [Fact]
    public async Task ContextWindowFallbacksNameWhereATooLongPromptGoes()
    {
        await using var longContext = await FakeOpenAiProvider.StartAsync(new FakeBehavior { Tokens = ["Read", " it", " all"] });
        await using var gateway = await GatewayHost.StartAsync(new()
        {
            ["model_list:2:model_name"] = "manus-long",
            ["model_list:2:litellm_params:model"] = "openai/long-context-model",
            ["model_list:2:litellm_params:api_base"] = longContext.BaseUrl.ToString(),
            ["router_settings:context_window_fallbacks:0:manus-primary:0"] = "manus-long",
        });
        using var client = gateway.CreateClient();
        // Together's wording for the same refusal.
        gateway.Primary.Fault = FakeFault.Status(400, FakeOpenAiProvider.ErrorBody(
            "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 32769. Given: 40000 `inputs` tokens and 4096 `max_new_tokens`"));

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("openai/long-context-model", Headers.Get(response, "x-onyx-deployment"));
        Assert.Equal(0, gateway.Fallback.Calls);
        Assert.Equal(1, longContext.Calls);
    }

    [Fact]
    public async Task APromptTooLongForEveryDeploymentIsTheClients400()
    {
        await using var gateway = await GatewayHost.StartAsync();
        using var client = gateway.CreateClient();
        gateway.Primary.Fault = FakeFault.Status(400, FakeOpenAiProvider.ErrorBody("prompt is too long: 300000 tokens > 200000 maximum", code: "context_length_exceeded"));
        gateway.Fallback.Fault = FakeFault.Status(400, FakeOllamaProvider.ErrorBody("input length exceeds the context length"));

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));

        var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.BadRequest);
        Assert.Equal("context_length_exceeded", (string?)error["code"]);
        Assert.Equal(1, gateway.Primary.Calls);
        Assert.Equal(1, gateway.Fallback.Calls);
    }

    [Fact]
    public async Task HandsAContentPolicyRefusalToTheClientAfterOneAttempt()
    {
        await using var gateway = await GatewayHost.StartAsync();
        using var client = gateway.CreateClient();
        gateway.Primary.Fault = FakeFault.Status(400, FakeOpenAiProvider.ErrorBody(
            "The response was filtered due to the prompt triggering our content management policy.", code: "content_filter"));

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));

        var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.BadRequest);
        Assert.Equal("content_policy_violation", (string?)error["code"]);
        Assert.Contains("content management policy", (string)error["message"]!);
        Assert.Equal(1, gateway.Primary.Calls);
        Assert.Equal(0, gateway.Fallback.Calls);
    }

    [Fact]
    public async Task ContentPolicyFallbacksTurnFallbackOnForAContentPolicyRefusal()
    {
        await using var gateway = await GatewayHost.StartAsync(new() { ["router_settings:content_policy_fallbacks:0:manus-primary:0"] = "manus-fallback" });
        using var client = gateway.CreateClient();
        gateway.Primary.Fault = FakeFault.Status(400, FakeOpenAiProvider.ErrorBody("Flagged by our safety system.", code: "content_policy_violation"));

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("true", Headers.Get(response, "x-onyx-fallback"));
        Assert.Equal(1, gateway.Primary.Calls);
    }

    [Fact]
    public async Task NeverRetriesASilentDeploymentButCountsItAgainstItsBreaker()
    {
        await using var gateway = await GatewayHost.StartAsync(new() { ["Onyx:Routing:FirstTokenTimeout"] = "00:00:00.300" });
        using var client = gateway.CreateClient();
        gateway.Primary.Fault = FakeFault.HangBeforeHeaders;

        for (var i = 0; i < 3; i++)
        {
            using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
            Assert.Equal("true", Headers.Get(response, "x-onyx-fallback"));
        }

        Assert.Equal(3, gateway.Primary.Calls);
        Assert.Equal(CircuitState.Open, Breaker(gateway).State);
    }

    [Fact]
    public async Task ASlowFirstTokenFailsOverButIsNoFailureOfTheProvider()
    {
        await using var gateway = await GatewayHost.StartAsync(new() { ["Onyx:Routing:FirstTokenTimeout"] = "00:00:00.300" });
        using var client = gateway.CreateClient();
        // The provider answers at once with its headers, then reads a long prompt: healthy, only slow for this request.
        gateway.Primary.Fault = FakeFault.SlowFirstToken(TimeSpan.FromSeconds(30));

        for (var i = 0; i < 4; i++)
        {
            using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
            Assert.Equal("true", Headers.Get(response, "x-onyx-fallback"));
        }

        Assert.Equal(4, gateway.Primary.Calls);
        Assert.Equal(CircuitState.Closed, Breaker(gateway).State);
    }

    [Fact]
    public async Task GivesALongPromptMoreTimeForItsFirstToken()
    {
        await using var gateway = await GatewayHost.StartAsync(new()
        {
            ["Onyx:Routing:FirstTokenTimeout"] = "00:00:00.500",
            ["Onyx:Routing:FirstTokenTimeoutPer1000PromptTokens"] = "00:00:01",
        });
        using var client = gateway.CreateClient();
        gateway.Primary.Fault = FakeFault.SlowFirstToken(TimeSpan.FromSeconds(1.5));

        using var shortPrompt = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        await shortPrompt.Content.ReadAsStringAsync();
        Assert.Equal("true", Headers.Get(shortPrompt, "x-onyx-fallback"));

        // About 4 000 tokens of prompt: 0.5 s + 4 s to the first token.
        var document = string.Join(" ", Enumerable.Repeat("lorem ipsum dolor", 1000));
        var longBody = new JsonObject
        {
            ["model"] = "manus-primary",
            ["stream"] = true,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = document }),
        }.ToJsonString();
        using var longPrompt = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(longBody));
        await longPrompt.Content.ReadAsStringAsync();
        Assert.Equal("false", Headers.Get(longPrompt, "x-onyx-fallback"));
    }

    private static CircuitBreaker Breaker(GatewayHost gateway) =>
        gateway.Services.GetRequiredService<CircuitBreakerRegistry>().All.Single(b => b.DeploymentId == "together_ai/deepseek-ai/DeepSeek-V3");
}
