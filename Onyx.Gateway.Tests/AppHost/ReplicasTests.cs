using System.Net;
using System.Text.Json.Nodes;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using StackExchange.Redis;

namespace Onyx.Gateway.Tests.AppHost;

/// <summary>
/// The default mode on a machine without a container engine: the AppHost runs redis-server itself, reports
/// Ollama unavailable, and here runs the gateway as three replicas behind one endpoint.
/// </summary>
public sealed class ReplicasTests(ReplicasTests.LocalAppHost fixture) : IClassFixture<ReplicasTests.LocalAppHost>
{
    private readonly DistributedApplication _app = fixture.App;

    /// <summary>One AppHost for the class: local infrastructure, three gateway replicas.</summary>
    public sealed class LocalAppHost : IAsyncLifetime
    {
        public DistributedApplication App { get; private set; } = null!;

        public async Task InitializeAsync() =>
            App = await AppHostFixture.StartAppHostAsync("--Onyx:Infrastructure=local", "--Onyx:Gateway:Replicas=3");

        public async Task DisposeAsync() => await App.DisposeAsync();
    }

    [Fact]
    public async Task ThreeReplicasEachAnswerAndShareOneRedis()
    {
        using var client = _app.CreateHttpClient("gateway", "http");
        var seen = new HashSet<string>();
        // A new connection per request, so the endpoint's proxy can hand each to another replica.
        for (var i = 0; i < 60 && seen.Count < 3; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/health");
            request.Headers.ConnectionClose = true;
            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var health = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            var replica = health["checks"]!["replica"]!;
            Assert.Equal("Healthy", (string?)replica["status"]);
            seen.Add((string)replica["data"]!["replica"]!);
        }
        Assert.Equal(3, seen.Count);

        var connectionString = await _app.GetConnectionStringAsync("redis");
        await using var redis = await ConnectionMultiplexer.ConnectAsync(connectionString!);
        var registered = (await redis.GetDatabase().HashKeysAsync("onyx:replicas")).Select(k => k.ToString()).ToHashSet();
        Assert.Equal(seen, registered);
    }

    [Fact]
    public async Task ReportsTheFallbackUnavailableWhenOllamaCannotRun()
    {
        using var client = _app.CreateHttpClient("gateway", "http");
        var health = JsonNode.Parse(await client.GetStringAsync("/health"))!;
        Assert.Contains("unavailable: service 'ollama' is not running", (string)health["checks"]!["deployments"]!["data"]!["ollama/mistral:7b-instruct"]!);

        Assert.True(_app.ResourceNotifications.TryGetCurrentState("ollama", out var ollama));
        Assert.Equal("Unavailable", ollama.Snapshot.State?.Text);
    }
}
