using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;
using StackExchange.Redis;

namespace Onyx.Gateway.Tests.AppHost;

/// <summary>
/// The default mode on a machine without a container engine: the AppHost runs redis-server itself, reports
/// Ollama unavailable, and here runs the gateway as three replicas behind one endpoint, with the master key from
/// its secret parameter and the primary deployment pointed at a fake Together AI.
/// </summary>
public sealed class ReplicasTests(ReplicasTests.LocalAppHost fixture) : IClassFixture<ReplicasTests.LocalAppHost>
{
    private readonly DistributedApplication _app = fixture.App;

    public const string MasterKey = "sk-replicas-master-2b8e61";

    /// <summary>One AppHost for the class: local infrastructure, three gateway replicas.</summary>
    public sealed class LocalAppHost : IAsyncLifetime
    {
        public DistributedApplication App { get; private set; } = null!;

        public FakeOpenAiProvider Primary { get; private set; } = null!;

        /// <summary>The AppHost's data directory: a fresh one, so no earlier run's Redis data is found there.</summary>
        public string DataDirectory { get; } = Directory.CreateTempSubdirectory("onyx-apphost-data-").FullName;

        public async Task InitializeAsync()
        {
            Primary = await FakeOpenAiProvider.StartAsync(new FakeBehavior { Models = ["deepseek-ai/DeepSeek-V3"] });
            // Three cold gateways, the AppHost, Redis and the tests share two cores here: Redis answers can take
            // longer than the default bounds (50 ms for a limit, 250 ms for a key), and a request past them is
            // decided by its replica alone. Exactness across replicas is what this class tests, so the bounds are
            // raised; the bounds themselves are tested in SharedRateLimitTests.
            App = await AppHostFixture.StartAppHostAsync(
                builder => builder.CreateResourceBuilder<ProjectResource>("gateway")
                    .WithEnvironment("Onyx__RateLimits__RedisTimeout", "00:00:10")
                    .WithEnvironment("Onyx__Auth__RedisTimeout", "00:00:10"),
                "--Onyx:Infrastructure=local", "--Onyx:Gateway:Replicas=3",
                $"--Onyx:Gateway:PrimaryBaseUrl={Primary.BaseUrl}", "--Parameters:together-api-key=sk-replicas-together-0000",
                $"--Parameters:master-key={MasterKey}", $"--Onyx:DataDirectory={DataDirectory}");
        }

        public async Task DisposeAsync()
        {
            await App.DisposeAsync();
            await Primary.DisposeAsync();
            Directory.Delete(DataDirectory, recursive: true);
        }
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
    public async Task LocalRedisKeepsAnAppendOnlyFileInTheAppHostDataDirectoryAndTheReplicasSpillNothing()
    {
        var connectionString = await _app.GetConnectionStringAsync("redis");
        await using var redis = await ConnectionMultiplexer.ConnectAsync(connectionString + ",allowAdmin=true");
        var config = (await redis.GetServer(redis.GetEndPoints()[0]).ConfigGetAsync("*")).ToDictionary(c => c.Key, c => c.Value);

        Assert.Equal("yes", config["appendonly"]);
        Assert.Equal("everysec", config["appendfsync"]);
        Assert.Equal(Path.Combine(fixture.DataDirectory, "redis"), config["dir"]);
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(fixture.DataDirectory, "redis", config["appenddirname"])));
        // The replicas keep their spill files in the AppHost's data directory too (they made it at start); with Redis
        // answering, they have written none.
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(fixture.DataDirectory, "audit")));
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

    [Fact]
    public async Task OneUserGetsExactlyItsLimitAcrossTheReplicasAndOthersAreUnaffected()
    {
        using var admin = Client(MasterKey);
        var userA = $"user-a-{Guid.NewGuid():N}";
        var keyA = await GenerateAsync(admin, userA);
        var keyB = await GenerateAsync(admin, $"user-b-{Guid.NewGuid():N}");
        using var clientA = Client(keyA);

        // 150 requests, 8 at a time, each on a new connection so the endpoint spreads them over the replicas.
        var started = Stopwatch.StartNew();
        using var gate = new SemaphoreSlim(8);
        var results = await Task.WhenAll(Enumerable.Range(0, 150).Select(async _ =>
        {
            await gate.WaitAsync();
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody()) };
                request.Headers.ConnectionClose = true;
                using var response = await clientA.SendAsync(request);
                var body = await response.Content.ReadAsStringAsync();
                return (response.StatusCode, Received: started.Elapsed, Body: body,
                    RetryAfter: response.Headers.RetryAfter?.Delta,
                    RetryAfterMs: response.Headers.TryGetValues("retry-after-ms", out var ms) ? long.Parse(ms.Single(), CultureInfo.InvariantCulture) : (long?)null);
            }
            finally
            {
                gate.Release();
            }
        }));

        Assert.True(results.All(r => r.StatusCode is HttpStatusCode.OK or HttpStatusCode.TooManyRequests),
            string.Join("\n", results.Where(r => r.StatusCode is not (HttpStatusCode.OK or HttpStatusCode.TooManyRequests)).Select(r => $"{(int)r.StatusCode} {r.Body}")));
        Assert.Equal(100, results.Count(r => r.StatusCode == HttpStatusCode.OK));
        var refused = results.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToList();
        Assert.Equal(50, refused.Count);
        foreach (var refusal in refused)
        {
            Assert.Equal("rate_limit_exceeded", (string?)JsonNode.Parse(refusal.Body)!["error"]!["code"]);
            // The oldest admitted request entered the window after the test started, so it leaves at most 60 s
            // from then: the wait is what is left of that, to the millisecond.
            var upper = TimeSpan.FromSeconds(60);
            var lower = TimeSpan.FromSeconds(60) - refusal.Received - TimeSpan.FromMilliseconds(50);
            Assert.InRange(TimeSpan.FromMilliseconds(refusal.RetryAfterMs!.Value), lower, upper);
            Assert.Equal(TimeSpan.FromSeconds(Math.Ceiling(refusal.RetryAfterMs.Value / 1000.0)), refusal.RetryAfter);
        }

        // Counted in the one Redis, by every replica.
        var connectionString = await _app.GetConnectionStringAsync("redis");
        await using var redis = await ConnectionMultiplexer.ConnectAsync(connectionString!);
        var admitted = await redis.GetDatabase().SortedSetRangeByRankAsync($"onyx:rl:{{{userA}}}:req");
        Assert.Equal(100, admitted.Length);
        Assert.True(admitted.Select(m => m.ToString().Split(':')[0]).Distinct().Count() >= 2, "one replica admitted every request");

        // Another user is unaffected, and its headers count down.
        using var clientB = Client(keyB);
        for (var remaining = 99; remaining >= 97; remaining--)
        {
            using var response = await clientB.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("100", response.Headers.GetValues("x-ratelimit-limit-requests").Single());
            Assert.Equal(remaining.ToString(CultureInfo.InvariantCulture), response.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        }
    }

    private HttpClient Client(string key)
    {
        var client = _app.CreateHttpClient("gateway", "http");
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    private static async Task<string> GenerateAsync(HttpClient admin, string user)
    {
        using var response = await admin.PostAsync("/key/generate", GatewayHost.Json($$"""{"user_id":"{{user}}"}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (string)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["key"]!;
    }
}
