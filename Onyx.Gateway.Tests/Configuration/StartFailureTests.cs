using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Configuration;

/// <summary>
/// The real gateway process (<c>dotnet Onyx.Gateway.dll</c>, as built next to the tests) with a config it cannot start
/// with: what its operator sees is a plain list of the problems on stderr, each naming its key, and a non-zero exit code.
/// </summary>
public sealed class StartFailureTests
{
    [Fact]
    public async Task ABadConfigIsAPlainListOfItsProblemsOnStderrAndANonZeroExit()
    {
        await using var config = await ConfigFile.WriteAsync("""
            model_list:
              - model_name: "manus-primary"
                litellm_params: { model: "bedrock/claude", rpm: 0 }
              - model_name: "manus-fallback"
                litellm_params: { model: "ollama/mistral:7b-instruct", rpm: 0 }
            router_settings:
              allowed_fails: 0
              redis_port: "99999"
              redis_host: "127.0.0.1"
            litellm_settings:
              num_retries: 20
            """);

        var (exitCode, stdout, stderr) = await RunGatewayAsync(config.Path);

        Assert.Equal(78, exitCode);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal("The Onyx gateway cannot start: its configuration has 5 problems.", lines[0]);
        Assert.Equal(
        [
            "- litellm_settings:num_retries must be from 0 to 10.",
            "- model_list:0:litellm_params:model has an unknown provider prefix 'bedrock/' (supported: together_ai/, deepseek/, openai/, hosted_vllm/, ollama/, ollama_chat/).",
            "- model_list:1:litellm_params:rpm must be at least 1.",
            "- router_settings:allowed_fails must be at least 1.",
            "- router_settings:redis_port must be a port number from 1 to 65535; got '99999'.",
        ], lines[1..]);
        Assert.DoesNotContain("Exception", stderr + stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr + stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AConfigFileThatIsNotYamlIsNamedWithTheParsersWords()
    {
        await using var config = await ConfigFile.WriteAsync("model_list:\n  - model_name: [unclosed\n");

        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAsync(new() { ["LITELLM_CONFIG_PATH"] = config.Path }));

        while (error is AggregateException or System.Reflection.TargetInvocationException && error.InnerException is not null)
        {
            error = error.InnerException!;
        }
        var validation = Assert.IsType<OptionsValidationException>(error);
        var failure = Assert.Single(validation.Failures);
        Assert.StartsWith($"LITELLM_CONFIG_PATH: '{config.Path}' is not a valid LiteLLM config file:", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void AValueOfTheWrongTypeIsOneLineNamingItsKey()
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["router_settings:allowed_fails"] = "three" })
            .Build();
        var error = Assert.ThrowsAny<Exception>(() => { configuration.Get<LiteLlmOptions>(); });
        using var stderr = new StringWriter();

        var exitCode = StartFailure.Report(error, stderr);

        Assert.Equal(78, exitCode);
        var lines = stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(2, lines.Length);
        Assert.Contains("'router_settings:allowed_fails'", lines[1], StringComparison.Ordinal);
    }

    private static async Task<(int ExitCode, string Stdout, string Stderr)> RunGatewayAsync(string configPath)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Onyx.Gateway.dll"));
        start.Environment["LITELLM_CONFIG_PATH"] = configPath;
        // Should it start after all, it must not take a port another test uses.
        start.Environment["ASPNETCORE_URLS"] = "http://127.0.0.1:0";
        foreach (var inherited in new[] { "ConnectionStrings__redis", "OTEL_EXPORTER_OTLP_ENDPOINT" })
        {
            start.Environment.Remove(inherited);
        }
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        return (process.ExitCode, await stdout, await stderr);
    }
}
