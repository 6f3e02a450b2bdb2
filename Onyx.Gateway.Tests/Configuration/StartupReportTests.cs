using Microsoft.Extensions.Options;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Configuration;

/// <summary>What the gateway says about its config at start-up, and that a bad config stops it.</summary>
public sealed class StartupReportTests
{
    [Fact]
    public async Task LogsEveryKeyItDoesNotActOnOnce()
    {
        await using var gateway = await GatewayHost.StartAsync();

        var ignored = gateway.Logs.Records.Where(r => r.EventId == 1004).Select(r => (string?)r["Key"]).ToList();
        // success_callback ["prometheus"] is /metrics and failure_callback ["sentry"] is SENTRY_DSN: both acted on.
        Assert.DoesNotContain("litellm_settings:success_callback:0", ignored);
        Assert.DoesNotContain("litellm_settings:failure_callback:0", ignored);
        Assert.Contains("model_list:0:litellm_params:stream", ignored);
        Assert.Equal(ignored.Count, ignored.Distinct().Count());
        Assert.DoesNotContain("model_list:0:litellm_params:model", ignored);
        Assert.DoesNotContain("litellm_settings:rate_limit:rpm", ignored);
        Assert.DoesNotContain("general_settings:master_key", ignored);
    }

    [Fact]
    public async Task NamesEveryOnyxKeyNoSettingReadsAndNoneItDoes()
    {
        await using var gateway = await GatewayHost.StartAsync(new()
        {
            // Typos, from any source: a setting's name, a sub-key of a duration, a section of nothing.
            ["Onyx:RateLimits:Windw"] = "00:01:00",
            ["Onyx:Routing:FirstTokenTimeout:Seconds"] = "3",
            ["Onyx:Nothing:Here"] = "1",
            // Real settings: nested options, list items, dictionary entries, other features' sections, a single key.
            ["Onyx:RateLimits:EndUser:Rpm"] = "10",
            ["Onyx:Cors:AllowedOrigins:0"] = "https://app.example.com",
            ["Onyx:Providers:ollama:ApiBase"] = "http://127.0.0.1:1",
            ["Onyx:Audit:File:MaxFiles"] = "3",
            ["Onyx:Redis:PingInterval"] = "00:00:01",
            ["Onyx:Shutdown:DrainTimeout"] = "00:00:05",
            ["Onyx:ConfigPath"] = "ignored-when-LITELLM_CONFIG_PATH-is-set",
        });

        var unknown = gateway.Logs.Records.Where(r => r.EventId == 1014).Select(r => (string?)r["Key"]).ToList();
        Assert.Equal(["Onyx:Nothing:Here", "Onyx:RateLimits:Windw", "Onyx:Routing:FirstTokenTimeout:Seconds"], unknown);
    }

    [Theory]
    [InlineData("Onyx:Routing:FirstTokenTimeout", "00:00:00", "Onyx:Routing:FirstTokenTimeout must be positive.")]
    [InlineData("Onyx:Routing:QueueLimit", "-1", "Onyx:Routing:QueueLimit must not be negative.")]
    [InlineData("Onyx:RateLimits:EndUser:Tpm", "-5", "Onyx:RateLimits:EndUser:Tpm must not be negative.")]
    [InlineData("Onyx:Limits:MaxRequestBodyBytes", "100", "Onyx:Limits:MaxRequestBodyBytes must be at least 1024.")]
    [InlineData("Onyx:RateLimits:ParallelLease", "00:00:02", "Onyx:RateLimits:ParallelLease must be at least 00:00:03: a call's lease is renewed every third of it, and a renewal may take a second.")]
    [InlineData("Onyx:Audit:BatchDelay", "00:00:02", "Onyx:Audit:BatchDelay must be between 00:00:00 and 00:00:01, not 00:00:02.")]
    [InlineData("Onyx:Audit:StreamKey", " ", "Onyx:Audit:StreamKey must not be empty.")]
    public async Task AValueOutOfItsBoundsStopsTheStartNamingItsKeyAndTheRule(string key, string value, string message)
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => GatewayHost.StartAsync(new() { [key] = value }));

        Assert.Contains(message, error.Failures);
    }

    [Fact]
    public async Task LogsACallbackItDoesNotSupport()
    {
        await using var gateway = await GatewayHost.StartAsync(new() { ["litellm_settings:success_callback:0"] = "langfuse" });

        var ignored = gateway.Logs.Records.Where(r => r.EventId == 1004).Select(r => (string?)r["Key"]).ToList();
        Assert.Contains("litellm_settings:success_callback:0", ignored);
    }

    [Fact]
    public async Task WarnsOfAProviderKeyWrittenInTheFileWithoutRepeatingIt()
    {
        const string literal = "sk-literal-in-the-file-0123456789";
        var config = Path.Combine(Path.GetTempPath(), $"onyx-literal-{Guid.NewGuid():N}.yaml");
        await File.WriteAllTextAsync(config, $$"""
            model_list:
              - model_name: "manus-primary"
                litellm_params: { model: "together_ai/deepseek-ai/DeepSeek-V3", api_key: "{{literal}}" }
                model_info: { max_output_tokens: 4096 }
              - model_name: "manus-primary"
                litellm_params: { model: "deepseek/deepseek-chat", api_key: "os.environ/DEEPSEEK_API_KEY" }
            """);
        try
        {
            await using var gateway = await GatewayHost.StartAsync(new() { ["LITELLM_CONFIG_PATH"] = config });

            var warned = gateway.Logs.Records.Where(r => r.EventId == 1006).Select(r => (string?)r["Key"]).ToList();
            Assert.Equal(["model_list:0:litellm_params:api_key"], warned);
            Assert.DoesNotContain(gateway.Logs.Records, r => r.Message.Contains(literal, StringComparison.Ordinal));
            // The output limit is acted on (400 above it), so it is not reported as ignored.
            var ignored = gateway.Logs.Records.Where(r => r.EventId == 1004).Select(r => (string?)r["Key"]).ToList();
            Assert.DoesNotContain("model_list:0:model_info:max_output_tokens", ignored);
        }
        finally
        {
            File.Delete(config);
        }
    }

    [Fact]
    public async Task RefusesToStartWithABadConfigAndNamesTheKey()
    {
        var config = Path.Combine(Path.GetTempPath(), $"onyx-bad-{Guid.NewGuid():N}.yaml");
        await File.WriteAllTextAsync(config, """
            model_list:
              - model_name: "manus-primary"
                litellm_params: { model: "bedrock/claude" }
            """);
        try
        {
            var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAsync(new() { ["LITELLM_CONFIG_PATH"] = config }));
            var validation = Unwrap(error) as OptionsValidationException;
            Assert.True(validation is not null, error.ToString());
            Assert.Contains("model_list:0:litellm_params:model has an unknown provider prefix 'bedrock/'", validation.Message);
        }
        finally
        {
            File.Delete(config);
        }
    }

    [Fact]
    public async Task RefusesToStartWithoutAConfigFile()
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAsync(new() { ["LITELLM_CONFIG_PATH"] = "/nonexistent/litellm-config.yaml" }));
        Assert.Contains("LITELLM_CONFIG_PATH", Unwrap(error).Message);
    }

    private static Exception Unwrap(Exception error)
    {
        while (error is AggregateException or System.Reflection.TargetInvocationException && error.InnerException is not null)
        {
            error = error.InnerException!;
        }
        return error;
    }
}
