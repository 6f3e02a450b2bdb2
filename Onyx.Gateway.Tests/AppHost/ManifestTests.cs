using System.Diagnostics;
using System.Reflection;
using System.Text.Json.Nodes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.AppHost;

/// <summary><c>dotnet run --project Onyx.AppHost -- --publisher manifest --output-path &lt;file&gt;</c> describes a deployment.</summary>
public sealed class ManifestTests
{
    [Fact]
    public async Task PublishesRedisOllamaWithTheModelAndTheGatewayWithoutSecrets()
    {
        var output = Path.Combine(Path.GetTempPath(), $"onyx-manifest-{Guid.NewGuid():N}.json");
        var configuration = typeof(ManifestTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()!.Configuration;
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = GatewayHost.RepositoryRoot,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in new[] { "run", "--project", "Onyx.AppHost", "--no-build", "--configuration", configuration, "--", "--publisher", "manifest", "--output-path", output })
        {
            start.ArgumentList.Add(arg);
        }
        // A key in the environment must not leak into the manifest: only a reference to the parameter may.
        start.Environment["Parameters__together-api-key"] = "sk-must-not-appear";
        start.Environment["Parameters__master-key"] = "sk-master-must-not-appear";
        start.Environment["Parameters__sentry-dsn"] = "https://public-must-not-appear@sentry.example.com/1";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        Assert.True(process.ExitCode == 0, $"exit {process.ExitCode}: {await stdout} {await stderr}");

        var text = await File.ReadAllTextAsync(output);
        File.Delete(output);
        Assert.DoesNotContain("must-not-appear", text);
        var resources = JsonNode.Parse(text)!["resources"]!;

        var redis = resources["redis"]!;
        Assert.Equal("container.v0", (string?)redis["type"]);
        Assert.Contains("/redis:", (string)redis["image"]!);
        Assert.Equal(6379, (int?)redis["bindings"]!["tcp"]!["targetPort"]);
        // Redis is the system of record: its data lives on a volume, in an append-only file synced every second.
        Assert.Equal("/data", (string?)redis["volumes"]![0]!["target"]);
        Assert.False((bool?)redis["volumes"]![0]!["readOnly"]);
        Assert.Equal("/bin/sh", (string?)redis["entrypoint"]);
        var command = (string)redis["args"]![1]!;
        Assert.StartsWith("redis-server ", command);
        Assert.Contains(" --appendonly yes --appendfsync everysec", command, StringComparison.Ordinal);

        var ollama = resources["ollama"]!;
        Assert.StartsWith("container.", (string?)ollama["type"]);
        var image = (string)ollama["image"]!;
        Assert.Contains("ollama/ollama:", image);
        Assert.DoesNotContain(":latest", image);
        Assert.Equal("/root/.ollama", (string?)ollama["volumes"]![0]!["target"]);
        Assert.Equal(11434, (int?)ollama["bindings"]!["http"]!["targetPort"]);

        Assert.Contains("Model=mistral:7b-instruct", (string)resources["mistral"]!["connectionString"]!);

        var key = resources["together-api-key"]!;
        Assert.Equal("parameter.v0", (string?)key["type"]);
        Assert.True((bool?)key["inputs"]!["value"]!["secret"]);

        var master = resources["master-key"]!;
        Assert.Equal("parameter.v0", (string?)master["type"]);
        Assert.True((bool?)master["inputs"]!["value"]!["secret"]);

        var gateway = resources["gateway"]!;
        var env = gateway["env"]!;
        Assert.Equal("{redis.connectionString}", (string?)env["ConnectionStrings__redis"]);
        Assert.Equal("{ollama.bindings.http.url}", (string?)env["services__ollama__http__0"]);
        Assert.Equal("{together-api-key.value}", (string?)env["TOGETHER_API_KEY"]);
        Assert.Equal("{master-key.value}", (string?)env["LITELLM_MASTER_KEY"]);
        Assert.True((bool?)resources["sentry-dsn"]!["inputs"]!["value"]!["secret"]);
        Assert.Equal("{sentry-dsn.value}", (string?)env["SENTRY_DSN"]);
        Assert.Equal("/app/litellm-config.yaml", (string?)env["LITELLM_CONFIG_PATH"]);
        Assert.Equal(4000, (int?)gateway["bindings"]!["http"]!["port"]);
        Assert.True((bool?)gateway["bindings"]!["http"]!["external"]);
    }
}
