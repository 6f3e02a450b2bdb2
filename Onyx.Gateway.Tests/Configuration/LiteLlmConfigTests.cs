using Microsoft.Extensions.Configuration;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Model;
using Onyx.Gateway.Providers;
using Onyx.Gateway.Routing;

namespace Onyx.Gateway.Tests.Configuration;

public sealed class LiteLlmConfigTests
{
    private static string StoryConfig => Path.Combine(AppContext.BaseDirectory, "TestData", "story-litellm-config.yaml");

    private static string ShippedConfig => Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "litellm-config.yaml"));

    private static (RoutingTable Table, List<string> Errors) Load(string yaml, Dictionary<string, string?>? settings = null)
    {
        var path = Path.GetTempFileName();
        File.WriteAllText(path, yaml);
        try
        {
            return LoadFile(path, settings);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static (RoutingTable Table, List<string> Errors) LoadFile(string path, Dictionary<string, string?>? settings = null)
    {
        var configuration = new ConfigurationBuilder()
            .AddYamlFile(path, optional: false)
            .AddInMemoryCollection(settings ?? [])
            .Build();
        var liteLlm = configuration.Get<LiteLlmOptions>() ?? new LiteLlmOptions();
        var onyx = configuration.GetSection(OnyxOptions.SectionName).Get<OnyxOptions>() ?? new OnyxOptions();
        var table = RoutingTable.Build(liteLlm, onyx, configuration, out var errors);
        return (table, errors);
    }

    [Fact]
    public void LoadsTheStorysConfigUnchanged()
    {
        var (table, errors) = LoadFile(StoryConfig, new() { ["TOGETHER_API_KEY"] = "sk-test" });

        Assert.Empty(errors);
        Assert.Equal(["manus-primary", "manus-fallback"], table.Aliases);
        Assert.True(table.TryGetChain("manus-primary", out var chain));
        Assert.Equal(["together_ai/deepseek-chat", "ollama/mistral:7b-instruct"], chain.Select(d => d.Id));

        var primary = chain[0];
        Assert.Equal(ProviderProtocol.OpenAiCompatible, primary.Provider.Protocol);
        Assert.Equal("deepseek-chat", primary.ProviderModel);
        Assert.Equal(new Uri("https://api.together.xyz/v1"), primary.ApiBase);
        Assert.Equal("sk-test", primary.ApiKey);
        Assert.Equal(4096, primary.DefaultMaxTokens);
        Assert.Equal(0.7, primary.DefaultTemperature);
        Assert.True(primary.IsAvailable);

        var fallback = chain[1];
        Assert.Equal(ProviderProtocol.OllamaNative, fallback.Provider.Protocol);
        Assert.Equal("mistral:7b-instruct", fallback.ProviderModel);
        Assert.Equal(new Uri("http://ollama:11434"), fallback.ApiBase);

        // The fallback alias has no fallback of its own.
        Assert.True(table.TryGetChain("manus-fallback", out var fallbackChain));
        Assert.Equal(["ollama/mistral:7b-instruct"], fallbackChain.Select(d => d.Id));
    }

    [Fact]
    public void ShippedConfigNamesARealTogetherModel()
    {
        var (table, errors) = LoadFile(ShippedConfig, new() { ["TOGETHER_API_KEY"] = "sk-test" });
        Assert.Empty(errors);
        Assert.Equal("deepseek-ai/DeepSeek-V3", table.Deployments[0].ProviderModel);
    }

    [Fact]
    public void MissingKeyMakesTheDeploymentUnavailableInsteadOfCallingWithAnEmptyKey()
    {
        var (table, errors) = LoadFile(StoryConfig);
        Assert.Empty(errors);
        var primary = table.Deployments[0];
        Assert.False(primary.IsAvailable);
        Assert.Contains("TOGETHER_API_KEY", primary.UnavailableReason);
        Assert.Null(primary.ApiKey);
    }

    [Fact]
    public void ResolvesOsEnvironReferencesAndServiceDiscovery()
    {
        var (table, errors) = Load("""
            model_list:
              - model_name: a
                litellm_params: { model: deepseek/deepseek-chat, api_key: os.environ/DEEPSEEK_KEY }
              - model_name: b
                litellm_params: { model: ollama_chat/llama3, api_base: "http://ollama:11434" }
            """,
            new() { ["DEEPSEEK_KEY"] = "dk", ["services:ollama:http:0"] = "http://127.0.0.1:5555" });
        Assert.Empty(errors);
        Assert.Equal("dk", table.Deployments[0].ApiKey);
        Assert.Equal(new Uri("http://127.0.0.1:5555/"), table.Deployments[1].ApiBase);
    }

    [Fact]
    public void ProviderBaseCanBeOverriddenThroughConfiguration()
    {
        var (table, _) = LoadFile(StoryConfig, new() { ["TOGETHER_API_KEY"] = "k", ["Onyx:Providers:together_ai:ApiBase"] = "http://127.0.0.1:9/v1" });
        Assert.Equal(new Uri("http://127.0.0.1:9/v1"), table.Deployments[0].ApiBase);
    }

    [Fact]
    public void EnvironmentOverridesTheFile()
    {
        var (table, errors) = LoadFile(StoryConfig, new() { ["model_list:0:litellm_params:max_tokens"] = "512" });
        Assert.Empty(errors);
        Assert.Equal(512, table.Deployments[0].DefaultMaxTokens);
    }

    [Fact]
    public void AnAliasMayAskForNoMoreOutputTokensThanTheSmallestLimitInItsChain()
    {
        var (table, errors) = Load("""
            model_list:
              - { model_name: a, litellm_params: { model: "openai/x", api_base: "http://h1/v1" }, model_info: { max_output_tokens: 8192 } }
              - { model_name: b, litellm_params: { model: "openai/y", api_base: "http://h2/v1" }, model_info: { max_tokens: 2048 } }
              - { model_name: c, litellm_params: { model: "openai/z", api_base: "http://h3/v1" } }
            router_settings:
              fallbacks: [{ a: [b] }]
            """);
        Assert.Empty(errors);
        Assert.Equal(2048, table.MaxOutputTokens("a"));
        Assert.Equal(2048, table.MaxOutputTokens("b"));
        Assert.Null(table.MaxOutputTokens("c"));
        Assert.Null(table.MaxOutputTokens("unknown"));
    }

    [Fact]
    public void ADefaultMaxTokensAboveTheModelsLimitIsAConfigError()
    {
        var (_, errors) = Load("""
            model_list:
              - { model_name: a, litellm_params: { model: "openai/x", api_base: "http://h1/v1", max_tokens: 5000 }, model_info: { max_output_tokens: 4096 } }
              - { model_name: b, litellm_params: { model: "openai/y", api_base: "http://h2/v1" }, model_info: { max_output_tokens: 0 } }
            """);
        Assert.Contains("model_list:0:litellm_params:max_tokens (5000) is more than model_info:max_output_tokens (4096).", errors);
        Assert.Contains("model_list:1:model_info:max_output_tokens must be at least 1.", errors);
    }

    [Fact]
    public void SupportsLiteLlmsFallbacksListForm()
    {
        var (table, errors) = Load("""
            model_list:
              - { model_name: a, litellm_params: { model: "openai/x", api_base: "http://h1/v1" } }
              - { model_name: b, litellm_params: { model: "openai/y", api_base: "http://h2/v1" } }
              - { model_name: c, litellm_params: { model: "openai/z", api_base: "http://h3/v1" } }
            router_settings:
              fallbacks: [{"a": ["c", "b"]}]
            """);
        Assert.Empty(errors);
        Assert.True(table.TryGetChain("a", out var chain));
        Assert.Equal(["openai/x", "openai/z", "openai/y"], chain.Select(d => d.Id));
        Assert.True(table.TryGetChain("b", out var alone));
        Assert.Single(alone);
    }

    [Fact]
    public void ReadsPricesPerTokenOrPerMillionFromLiteLlmParamsOrModelInfo()
    {
        var (table, errors) = Load("""
            model_list:
              - model_name: a
                litellm_params: { model: "openai/x", api_base: "http://h1/v1", input_cost_per_token: 0.0000025, output_cost_per_token: 0.00001 }
              - model_name: b
                litellm_params: { model: "openai/y", api_base: "http://h2/v1" }
                model_info: { input_cost_per_million_tokens: 0.6, output_cost_per_million_tokens: 1.7 }
              - model_name: c
                litellm_params: { model: "openai/z", api_base: "http://h3/v1", output_cost_per_million_tokens: 3 }
              - model_name: d
                litellm_params: { model: "openai/w", api_base: "http://h4/v1" }
            """);
        Assert.Empty(errors);
        Assert.Equal(new Price(0.0000025m, 0.00001m), table.Deployments[0].Price);
        Assert.Equal(new Price(0.0000006m, 0.0000017m), table.Deployments[1].Price);
        Assert.Equal(new Price(0m, 0.000003m), table.Deployments[2].Price);
        Assert.Null(table.Deployments[3].Price);
        Assert.Equal(0.00007m, table.Deployments[0].Price!.CostOf(new(8, 5)));
    }

    [Theory]
    [InlineData("model_list:\n  - model_name: a\n    litellm_params: { model: \"openai/x\", input_cost_per_token: -1 }", "model_list:0:litellm_params:input_cost_per_token", "negative")]
    [InlineData("model_list:\n  - model_name: a\n    litellm_params: { model: \"openai/x\", input_cost_per_token: 0.000001 }\n    model_info: { input_cost_per_million_tokens: 2 }", "model_list:0:litellm_params:input_cost_per_token and model_list:0:model_info:input_cost_per_million_tokens", "give one")]
    [InlineData("model_list:\n  - model_name: a\n    litellm_params: { model: \"bedrock/claude\" }", "model_list:0:litellm_params:model", "unknown provider prefix 'bedrock/'")]
    [InlineData("model_list:\n  - model_name: a\n    litellm_params: { model: \"gpt-4\" }", "model_list:0:litellm_params:model", "'<provider>/<model>'")]
    [InlineData("model_list:\n  - litellm_params: { model: \"openai/x\" }", "model_list:0:model_name", "required")]
    [InlineData("model_list:\n  - model_name: a\n    litellm_params: { model: \"openai/x\", api_base: \"not a url\" }", "model_list:0:litellm_params:api_base", "absolute")]
    [InlineData("model_list:\n  - model_name: a\n    litellm_params: { model: \"openai/x\" }\nrouter_settings: { fallback_models: [\"nope\"] }", "router_settings:fallback_models", "'nope'")]
    [InlineData("model_list:\n  - model_name: a\n    litellm_params: { model: \"openai/x\" }\nrouter_settings: { allowed_fails: 0 }", "router_settings:allowed_fails", "at least 1")]
    public void BadConfigIsReportedByKey(string yaml, string key, string detail)
    {
        var (_, errors) = Load(yaml);
        var error = Assert.Single(errors);
        Assert.StartsWith(key, error);
        Assert.Contains(detail, error);
    }
}
