using System.Diagnostics;
using System.Reflection;
using System.Text.Json.Nodes;
using Aspire.Hosting;
using Aspire.Hosting.Testing;
using Onyx.AppHost.Gateway;
using Onyx.AppHost.Samples;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.AppHost;

/// <summary>
/// The gateway's consumer in the AppHost's model: the connection string a deployment is given, and when the gateway is
/// told the consumer's key. (Its use by a running project: <see cref="AspireConsumerTests"/>.)
/// </summary>
public sealed class GatewayConsumerTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task ManifestGivesConsumersAConnectionStringOfParameterReferencesAndTheGatewayTheirKey()
    {
        var text = await PublishManifestAsync(new Dictionary<string, string>
        {
            // Values in the environment must not leak into the manifest: only references to the parameters may.
            ["Parameters__master-key"] = "sk-master-must-not-appear",
            ["Parameters__onyx-key"] = "sk-consumer-must-not-appear",
            ["Parameters__together-api-key"] = "sk-together-must-not-appear",
        }, "--Onyx:Sample:Enabled=true");

        Assert.DoesNotContain("must-not-appear", text);
        var resources = JsonNode.Parse(text)!["resources"]!;

        var onyx = resources[GatewayConsumerBuilderExtensions.DefaultConsumerName]!;
        Assert.Equal("value.v0", (string?)onyx["type"]);
        Assert.Equal("Endpoint={gateway.bindings.http.url}/v1;Key={onyx-key.value}", (string?)onyx["connectionString"]);

        // The consumer's key: a secret the deployment generates (letters and digits: it sits in a connection string).
        var key = resources["onyx-key"]!;
        Assert.Equal("parameter.v0", (string?)key["type"]);
        Assert.True((bool?)key["inputs"]!["value"]!["secret"]);
        Assert.False((bool?)key["inputs"]!["value"]!["default"]!["generate"]!["special"]);

        // The gateway knows it as a configured key of user "onyx", read from a variable (a config key never holds one).
        var gateway = resources["gateway"]!["env"]!;
        Assert.Equal("{onyx-key.value}", (string?)gateway["ONYX_CONSUMER_KEY_ONYX"]);
        Assert.Equal("os.environ/ONYX_CONSUMER_KEY_ONYX", (string?)gateway["general_settings__keys__aspire_onyx__key"]);
        Assert.Equal("onyx", (string?)gateway["general_settings__keys__aspire_onyx__user_id"]);

        // The sample gets the connection string, and nothing of the master key.
        var sample = resources[ChatSampleBuilderExtensions.SampleName]!;
        Assert.Equal("project.v0", (string?)sample["type"]);
        var env = sample["env"]!.AsObject();
        Assert.Equal("{onyx.connectionString}", (string?)env["ConnectionStrings__onyx"]);
        Assert.DoesNotContain(env, e => e.Value?.ToString().Contains("master-key", StringComparison.Ordinal) == true);
    }

    /// <summary>
    /// Run without a master key, the gateway serves loopback callers without any key; a consumer's key would end that.
    /// It is declared only when something needs it: a project referencing the consumer (here the sample, opt-in), or a
    /// master key (keys are required anyway).
    /// </summary>
    [Theory]
    [InlineData(false, false, false)]
    [InlineData(false, true, true)]
    [InlineData(true, false, true)]
    [InlineData(true, true, true)]
    public async Task WhenRunTheConsumerKeyIsDeclaredOnlyIfAMasterKeyOrAReferenceNeedsIt(bool masterKey, bool sample, bool declared)
    {
        string[] args =
        [
            "--Onyx:Infrastructure=external",
            $"--Onyx:Sample:Enabled={sample}",
            .. masterKey ? ["--Parameters:master-key=sk-declared-master-1111"] : Array.Empty<string>(),
        ];
        using var cancel = new CancellationTokenSource(Deadline);
        await using var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Onyx_AppHost>(args,
            (options, _) => options.DisableDashboard = true, cancel.Token);

        var consumer = builder.Resources.OfType<GatewayConsumerResource>().Single();

        Assert.Equal(declared, GatewayConsumerBuilderExtensions.IsDeclared(builder, consumer));
        // The sample is there only when asked for.
        Assert.Equal(sample, builder.Resources.Any(r => r.Name == ChatSampleBuilderExtensions.SampleName));
    }

    private static async Task<string> PublishManifestAsync(Dictionary<string, string> environment, params string[] args)
    {
        var output = Path.Combine(Path.GetTempPath(), $"onyx-manifest-{Guid.NewGuid():N}.json");
        var configuration = typeof(GatewayConsumerTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()!.Configuration;
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = GatewayHost.RepositoryRoot,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in (string[])["run", "--project", "Onyx.AppHost", "--no-build", "--configuration", configuration, "--",
                     "--publisher", "manifest", "--output-path", output, .. args])
        {
            start.ArgumentList.Add(arg);
        }
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(Deadline);
        Assert.True(process.ExitCode == 0, $"exit {process.ExitCode}: {await stdout} {await stderr}");
        try
        {
            return await File.ReadAllTextAsync(output);
        }
        finally
        {
            File.Delete(output);
        }
    }
}
