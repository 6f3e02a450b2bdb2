using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.AppHost;

/// <summary>
/// The real AppHost, started once for a test collection through Aspire.Hosting.Testing — no container engine:
/// infrastructure mode <c>external</c> points the gateway at a real redis-server and at in-process fake
/// providers that speak Together AI's and Ollama's wire protocols.
/// </summary>
public sealed class AppHostFixture : IAsyncLifetime
{
    public static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(120);
    public const string TogetherKey = "sk-apphost-test-91b2";
    public const string MasterKey = "sk-apphost-master-5c7e20d1";

    private RedisServerProcess? _redis;

    public DistributedApplication App { get; private set; } = null!;

    public FakeOpenAiProvider Primary { get; private set; } = null!;

    public FakeOllamaProvider Fallback { get; private set; } = null!;

    public string RedisConnectionString => _redis!.ConnectionString;

    /// <summary>The AppHost's data directory (the gateway's spill files): a fresh one, kept out of the repository.</summary>
    public string DataDirectory { get; } = Directory.CreateTempSubdirectory("onyx-apphost-data-").FullName;

    public async Task InitializeAsync()
    {
        Primary = await FakeOpenAiProvider.StartAsync(new FakeBehavior { Models = ["deepseek-ai/DeepSeek-V3"] });
        Fallback = await FakeOllamaProvider.StartAsync(new FakeBehavior { Models = ["mistral:7b-instruct"] });
        _redis = await RedisServerProcess.StartAsync(TimeSpan.FromSeconds(20));

        App = await StartAppHostAsync(
            builder => AddFaultMatrixAliases(builder.CreateResourceBuilder<ProjectResource>("gateway")),
            "--Onyx:Infrastructure=external",
            $"--Onyx:External:Redis={_redis.ConnectionString}",
            $"--Onyx:External:OllamaUrl={Fallback.BaseUrl}",
            $"--Onyx:Gateway:PrimaryBaseUrl={Primary.BaseUrl}",
            $"--Parameters:together-api-key={TogetherKey}",
            $"--Parameters:master-key={MasterKey}",
            $"--Onyx:DataDirectory={DataDirectory}");
        await WarmUpAsync();
    }

    /// <summary>
    /// Aliases the fault matrix needs beside the story's two, each falling back to manus-fallback like every alias:
    /// <c>matrix</c> and <c>matrix-429</c> on the fake primary (their own deployments, so their breakers are their
    /// own), <c>matrix-refused</c> on a port nobody listens on, <c>matrix-unresolvable</c> on a host no DNS knows.
    /// Breakers open only after 1 000 failures here, so one case's failures never decide another's route.
    /// </summary>
    private void AddFaultMatrixAliases(IResourceBuilder<ProjectResource> gateway)
    {
        var aliases = new (string Alias, string Model, string ApiBase)[]
        {
            ("matrix", "openai/matrix-model", Primary.BaseUrl.ToString()),
            ("matrix-429", "openai/matrix-429", Primary.BaseUrl.ToString()),
            ("matrix-refused", "openai/refused", "http://127.0.0.1:1/v1"),
            ("matrix-unresolvable", "openai/unresolvable", "http://llm.invalid/v1"),
        };
        for (var i = 0; i < aliases.Length; i++)
        {
            var entry = $"model_list__{i + 2}__";
            gateway.WithEnvironment(entry + "model_name", aliases[i].Alias)
                .WithEnvironment(entry + "litellm_params__model", aliases[i].Model)
                .WithEnvironment(entry + "litellm_params__api_base", aliases[i].ApiBase);
        }
        gateway.WithEnvironment("router_settings__allowed_fails", "1000");
    }

    /// <summary>
    /// Sends a streamed answer through each deployment and one failover, so timing assertions measure a running
    /// gateway rather than the JIT compiling its first request. Counters are reset afterwards.
    /// </summary>
    private async Task WarmUpAsync()
    {
        using var client = CreateGatewayClient();
        Primary.FailNext(1, FakeFault.Status(500));
        foreach (var model in new[] { "manus-primary", "manus-primary", "manus-fallback" })
        {
            using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(model, stream: true)))
                .WaitAsync(StartTimeout);
            response.EnsureSuccessStatusCode();
            await response.Content.ReadAsStringAsync();
        }
        ResetFakes();
    }

    /// <summary>Builds and starts the AppHost with <paramref name="args"/>; returns once the gateway is healthy.</summary>
    public static Task<DistributedApplication> StartAppHostAsync(params string[] args) => StartAppHostAsync(null, args);

    /// <param name="configure">Changes to the app model before it is built (e.g. gateway settings only a test needs).</param>
    public static async Task<DistributedApplication> StartAppHostAsync(Action<IDistributedApplicationTestingBuilder>? configure, params string[] args)
    {
        using var cancel = new CancellationTokenSource(StartTimeout);
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Onyx_AppHost>(args,
            (options, _) => options.DisableDashboard = true, cancel.Token);
        configure?.Invoke(builder);
        var app = await builder.BuildAsync(cancel.Token).WaitAsync(StartTimeout);
        await app.StartAsync(cancel.Token).WaitAsync(StartTimeout);
        await app.ResourceNotifications.WaitForResourceHealthyAsync("gateway", cancel.Token).WaitAsync(StartTimeout);
        return app;
    }

    /// <summary>A client of the gateway that sends the master key.</summary>
    public HttpClient CreateGatewayClient()
    {
        var client = App.CreateHttpClient("gateway", "http");
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", MasterKey);
        return client;
    }

    public void ResetFakes()
    {
        Primary.Reset();
        Fallback.Reset();
    }

    public async Task DisposeAsync()
    {
        if (App is not null)
        {
            await App.DisposeAsync();
        }
        if (_redis is not null)
        {
            await _redis.DisposeAsync();
        }
        await Primary.DisposeAsync();
        await Fallback.DisposeAsync();
        Directory.Delete(DataDirectory, recursive: true);
    }
}

/// <summary>
/// Runs alone, after the parallel tests: its failover test holds the story's 3 s bound on wall-clock time, which
/// other tests competing for the two cores must not eat into.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AppHostCollection : ICollectionFixture<AppHostFixture>
{
    public const string Name = "AppHost";
}
