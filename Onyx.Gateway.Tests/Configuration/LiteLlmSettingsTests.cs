using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Model;
using Onyx.Gateway.Providers;
using Onyx.Gateway.Routing;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Configuration;

/// <summary>
/// The retry and fallback keys LiteLLM reads in <c>litellm_settings</c> as well as in <c>router_settings</c>: a config
/// that sets them only there gets them, and when both sections set one, <c>router_settings</c> wins as in LiteLLM and
/// the other is named at start-up.
/// </summary>
public sealed class LiteLlmSettingsTests
{
    /// <summary>The gateway's own aliases (GatewayHost points them at its fakes), and what a test adds.</summary>
    private static string Config(string rest) => $$"""
        model_list:
          - model_name: "manus-primary"
            litellm_params: { model: "together_ai/deepseek-ai/DeepSeek-V3", api_key: "os.environ/TOGETHER_API_KEY" }
          - model_name: "manus-fallback"
            litellm_params: { model: "ollama/mistral:7b-instruct", api_base: "http://ollama:11434" }
        {{rest}}
        """;

    [Fact]
    public async Task FallbacksInLiteLlmSettingsAloneGiveTheAliasItsFallback()
    {
        await using var file = await ConfigFile.WriteAsync(Config("""
            litellm_settings:
              fallbacks: [{"manus-primary": ["manus-fallback"]}]
            """));
        await using var gateway = await GatewayHost.StartAsync(new() { ["LITELLM_CONFIG_PATH"] = file.Path });
        using var client = gateway.CreateClient();
        gateway.Primary.Fault = FakeFault.Status(500);

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("true", OpenAiResponses.Header(response, "x-onyx-fallback"));
        Assert.Equal(1, gateway.Fallback.Calls);
        var ignored = gateway.Logs.Records.Where(r => r.EventId == 1004).Select(r => (string?)r["Key"]).ToList();
        Assert.DoesNotContain(ignored, key => key!.StartsWith("litellm_settings:fallbacks", StringComparison.Ordinal));
    }

    [Fact]
    public async Task WhenBothSectionsSetFallbacksRouterSettingsWinsAndTheOtherIsNamed()
    {
        await using var file = await ConfigFile.WriteAsync(Config("""
              - model_name: "nowhere"
                litellm_params: { model: "openai/nowhere", api_base: "http://127.0.0.1:9/v1" }
            router_settings:
              fallbacks: [{"manus-primary": ["manus-fallback"]}]
            litellm_settings:
              fallbacks: [{"manus-primary": ["nowhere"]}]
              num_retries: 0
            """));
        await using var gateway = await GatewayHost.StartAsync(new() { ["LITELLM_CONFIG_PATH"] = file.Path });
        using var client = gateway.CreateClient();
        gateway.Primary.Fault = FakeFault.Status(500);

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("ollama/mistral:7b-instruct", OpenAiResponses.Header(response, "x-onyx-deployment"));
        // litellm_settings:num_retries is the only one set: it is used (no retry of the primary's 500).
        Assert.Equal(1, gateway.Primary.Calls);
        var overridden = Assert.Single(gateway.Logs.Records, r => r.EventId == 1010);
        Assert.Equal("litellm_settings:fallbacks", overridden["Key"]);
        Assert.Equal("router_settings:fallbacks", overridden["UsedKey"]);
    }

    [Fact]
    public void RetriesAndTheRequestTimeoutComeFromLiteLlmSettingsWhenRouterSettingsHasNone()
    {
        var options = LiteLlmConfig.Bind(Config("""
            litellm_settings:
              num_retries: 0
              request_timeout: 30
              retry_policy: { RateLimitErrorRetries: 0 }
              context_window_fallbacks: [{"manus-primary": ["manus-fallback"]}]
              content_policy_fallbacks: [{"manus-primary": ["manus-fallback"]}]
              default_fallbacks: ["manus-fallback"]
            """));

        var router = options.RouterSettings;
        Assert.Equal(0, router.NumRetries);
        Assert.Equal(30, router.Timeout);
        Assert.Equal(0, router.RetryPolicy.RateLimitErrorRetries);
        Assert.Equal("litellm_settings:request_timeout", router.KeyOf("timeout"));
        Assert.Empty(options.Overridden);

        var clock = TestClock.Create();
        var policy = new FailurePolicy(Options.Create(new OnyxOptions()), Options.Create(options), clock);
        Assert.Equal(TimeSpan.FromSeconds(30), policy.Budget);
        var serverError = new UpstreamException(FailureKind.Status, "500", statusCode: 500);
        Assert.Equal(NextStep.NextDeployment, policy.Decide(serverError, headersReceived: true, new AttemptHistory(), clock.GetTimestamp(), false).Next);

        var table = RoutingTable.Build(options, new OnyxOptions(), new ConfigurationBuilder().Build(), out var errors);
        Assert.Empty(errors);
        Assert.Equal(["manus-fallback"], table.ContextWindowFallbacks("manus-primary")!.Select(d => d.Alias));
        Assert.Equal(["manus-fallback"], table.ContentPolicyFallbacks("manus-primary")!.Select(d => d.Alias));
        Assert.True(table.TryGetChain("manus-primary", out var chain));
        Assert.Equal(["manus-primary", "manus-fallback"], chain.Select(d => d.Alias));
    }

    [Fact]
    public void ABadValueInLiteLlmSettingsIsReportedUnderItsOwnKey()
    {
        var options = LiteLlmConfig.Bind(Config("""
            litellm_settings:
              num_retries: 20
              timeout: -1
              fallbacks: [{"manus-primary": ["nope"]}]
            """));
        var configuration = new ConfigurationBuilder().Build();
        var failures = new LiteLlmOptionsValidator(configuration).Validate(null, options).Failures!
            .Concat(new RoutingTableValidator(configuration, Options.Create(new OnyxOptions())).Validate(null, options).Failures!).ToList();

        Assert.Contains("litellm_settings:num_retries must be from 0 to 10.", failures);
        Assert.Contains("litellm_settings:timeout must be a positive number of seconds.", failures);
        Assert.Contains("litellm_settings:fallbacks:0:manus-primary names 'nope', which is not a model_name in model_list.", failures);
    }
}
