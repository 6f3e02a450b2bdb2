using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.DependencyInjection;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace Onyx.Gateway.Tests.AppHost;

/// <summary>Runs alone: its timeline (Redis down for 10 s, a replica stopped) must not compete with other tests for the cores.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ChaosCollection
{
    public const string Name = "Chaos";
}

/// <summary>
/// The AppHost as operators run it — three gateway replicas and the AppHost's own redis-server — under steady traffic
/// from several users, streams and JSON, while Redis is killed for ten seconds and started again on its data, and then
/// a replica is stopped mid-stream. Nothing may be lost or doubled: every request ends whole or in a clean error, no
/// live replica's /health says 503, no user is refused below their limits once Redis is back, the audit trail holds
/// exactly one record per request, and each key's spend is the sum of its calls' costs.
/// </summary>
[Collection(ChaosCollection.Name)]
public sealed class ChaosTests(ITestOutputHelper output)
{
    private const string MasterKey = "sk-chaos-master-7d41c9";
    private static readonly IReadOnlyList<string> Tokens = Enumerable.Range(0, 10).Select(i => i == 0 ? "w0" : $" w{i}").ToList();
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task RedisKilledAndAReplicaStoppedMidStreamLoseNothing()
    {
        var clock = Stopwatch.StartNew();
        await using var primary = await FakeOpenAiProvider.StartAsync(new FakeBehavior
        {
            Models = ["deepseek-ai/DeepSeek-V3"],
            Tokens = Tokens,
            TokenDelay = TimeSpan.FromMilliseconds(40),
        });
        var dataDirectory = Directory.CreateTempSubdirectory("onyx-chaos-").FullName;
        await using var app = await AppHostFixture.StartAppHostAsync(
            builder => builder.CreateResourceBuilder<ProjectResource>("gateway")
                .WithEnvironment("model_list__0__litellm_params__input_cost_per_million_tokens", "1.25")
                .WithEnvironment("model_list__0__litellm_params__output_cost_per_million_tokens", "2.5"),
            "--Onyx:Infrastructure=local", "--Onyx:Gateway:Replicas=3", $"--Onyx:DataDirectory={dataDirectory}",
            $"--Onyx:Gateway:PrimaryBaseUrl={primary.BaseUrl}", "--Parameters:together-api-key=sk-chaos-together-0000",
            $"--Parameters:master-key={MasterKey}");
        var started = clock.Elapsed;
        var replicas = await ReplicaIdsAsync(app);
        Assert.Equal(3, replicas.Count);

        using var admin = Client(app, MasterKey);
        var users = new List<(string User, string Key, int Workers)>();
        for (var i = 0; i < 3; i++)
        {
            // The third user may have three calls in flight (two workers, and a slot a moment late in being freed): a slot
            // leaked by the outage would refuse one of three calls sent together afterwards.
            var user = $"chaos-user-{i}";
            var limits = i == 2 ? ""","max_parallel_requests":3""" : "";
            using var generated = await admin.PostAsync("/key/generate", GatewayHost.Json($$"""{"user_id":"{{user}}","rpm_limit":100000,"tpm_limit":100000000{{limits}}}"""));
            Assert.Equal(HttpStatusCode.OK, generated.StatusCode);
            users.Add((user, (string)JsonNode.Parse(await generated.Content.ReadAsStringAsync())!["key"]!, 2));
        }

        var outcomes = new ConcurrentQueue<Outcome>();
        var health = new ConcurrentQueue<Probe>();
        using var stopTraffic = new CancellationTokenSource();
        var workers = users.SelectMany(u => Enumerable.Range(0, u.Workers).Select(w => RunWorkerAsync(app, clock, u.Key, $"{u.User}-{w}", outcomes, stopTraffic.Token))).ToList();
        var poller = PollHealthAsync(app, clock, health, stopTraffic.Token);

        // The timeline: steady traffic, Redis killed for ten seconds and started again, then a replica stopped.
        var commands = app.Services.GetRequiredService<ResourceCommandService>();
        await Task.Delay(TimeSpan.FromSeconds(3));
        var redisDown = clock.Elapsed;
        Assert.True((await commands.ExecuteCommandAsync("redis", KnownResourceCommands.StopCommand)).Success);
        await Task.Delay(TimeSpan.FromSeconds(10));
        Assert.True((await commands.ExecuteCommandAsync("redis", KnownResourceCommands.StartCommand)).Success);
        await app.ResourceNotifications.WaitForResourceHealthyAsync("redis").WaitAsync(Deadline);
        var redisBack = clock.Elapsed;
        await Task.Delay(TimeSpan.FromSeconds(2));
        // As an orchestrator stops a pod: SIGTERM to the replica's process, which drains what it has in flight and exits.
        var (stopped, pid) = replicas[0];
        var replicaStopped = clock.Elapsed;
        using (var replica = Process.GetProcessById(pid))
        {
            using var kill = Process.Start("kill", ["-TERM", pid.ToString(CultureInfo.InvariantCulture)])!;
            await kill.WaitForExitAsync();
            await replica.WaitForExitAsync().WaitAsync(Deadline);
        }
        var replicaExited = clock.Elapsed;
        await Task.Delay(TimeSpan.FromSeconds(2));
        await stopTraffic.CancelAsync();
        await Task.WhenAll(workers).WaitAsync(Deadline);
        await poller.WaitAsync(Deadline);

        // Every request ended whole or in a clean error: none hung (each had a deadline), none got a spliced 200.
        var all = outcomes.ToList();
        Assert.True(all.Count > 100, $"only {all.Count} requests were sent");
        var unclean = all.Where(o => o.Kind is not (OutcomeKind.Whole or OutcomeKind.CleanError)).ToList();
        Assert.True(unclean.Count == 0, string.Join("\n", unclean.Select(o => $"{o.RequestId}: {o.Kind} {o.Detail}")));

        // No live replica's readiness said 503: a 503 may only come from the replica that was draining.
        var notReady = health.Where(h => h.Status != HttpStatusCode.OK).ToList();
        Assert.Contains(health, h => h.At > redisDown && h.At < redisBack && h.Body.Contains("\"Degraded\"", StringComparison.Ordinal));
        Assert.All(notReady, h => Assert.Contains("Draining", h.Body, StringComparison.Ordinal));

        // Once every replica counts in Redis again, nobody is refused below their limits: no 429 for a request sent after
        // that, and the parallel-limited user gets all three of its slots at once.
        var recovered = health.Where(h => h.At > redisBack && h.RateLimitsShared).GroupBy(h => h.Replica).Select(g => g.Min(h => h.At)).DefaultIfEmpty().Max();
        Assert.True(health.Where(h => h.At > redisBack && h.RateLimitsShared).Select(h => h.Replica).Distinct().Count() >= 2, "the replicas never reported shared limits after Redis came back");
        var refusedAfter = all.Where(o => o.Sent > recovered && o.Status == HttpStatusCode.TooManyRequests).ToList();
        Assert.True(refusedAfter.Count == 0, string.Join("\n", refusedAfter.Select(o => $"{o.RequestId} at {o.Sent.TotalSeconds:0.000} s: {o.Detail}")));
        using var limited = Client(app, users[2].Key);
        var three = await Task.WhenAll(Enumerable.Range(0, 3).Select(async i =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody()) };
            request.Headers.Add("x-request-id", $"chaos-after-{i}");
            using var response = await limited.SendAsync(request);
            return response.StatusCode;
        }));
        Assert.All(three, status => Assert.Equal(HttpStatusCode.OK, status));

        // The audit trail holds exactly one record per request that reached an endpoint.
        var reached = all.Where(o => o.Audited).Select(o => o.RequestId).Concat(Enumerable.Range(0, 3).Select(i => $"chaos-after-{i}")).ToHashSet(StringComparer.Ordinal);
        var redisConnection = (await app.GetConnectionStringAsync("redis"))!;
        await using var redis = await ConnectionMultiplexer.ConnectAsync(redisConnection);
        var records = await AuditRecordsAsync(redisConnection, redis, reached);
        var perRequest = records.GroupBy(r => (string)r["request_id"]!).ToDictionary(g => g.Key, g => g.Count());
        var lost = reached.Where(id => !perRequest.ContainsKey(id)).ToList();
        var doubled = perRequest.Where(p => p.Value > 1).Select(p => p.Key).ToList();
        Assert.True(lost.Count == 0, "lost: " + string.Join(", ", all.Where(o => lost.Contains(o.RequestId)).Take(20)));
        Assert.True(doubled.Count == 0, "doubled: " + string.Join(", ", doubled.Take(20)));

        // Each key's spend is the sum of its calls' costs, as their audit records state them.
        foreach (var (user, key, _) in users)
        {
            var costs = records.Where(r => (string?)r["user_id"] == user).Sum(r => r["cost_usd"] is JsonValue v ? (decimal)v : 0m);
            using var info = await admin.GetAsync($"/key/info?key={Uri.EscapeDataString(key)}");
            var spend = (decimal)JsonNode.Parse(await info.Content.ReadAsStringAsync())!["info"]!["spend"]!;
            Assert.True(Math.Abs(spend - costs) < 0.000001m, $"{user}: spend {spend}, audited costs {costs}");
        }

        output.WriteLine($"AppHost up in {started.TotalSeconds:0.0} s; Redis down {redisDown.TotalSeconds:0.0}–{redisBack.TotalSeconds:0.0} s; " +
            $"replica {stopped} sent SIGTERM at {replicaStopped.TotalSeconds:0.0} s, exited at {replicaExited.TotalSeconds:0.0} s");
        output.WriteLine($"every replica shared limits again {(recovered - redisBack).TotalMilliseconds:0} ms after Redis was back; 429s before that: {all.Count(o => o.Status == HttpStatusCode.TooManyRequests)}");
        output.WriteLine($"requests: {all.Count}; whole: {all.Count(o => o.Kind == OutcomeKind.Whole)}; clean errors: {all.Count(o => o.Kind == OutcomeKind.CleanError)} " +
            $"({string.Join(", ", all.Where(o => o.Kind == OutcomeKind.CleanError).GroupBy(o => o.Detail).Select(g => $"{g.Count()} {g.Key}"))}); retried after a draining replica's 503: {all.Sum(o => o.Retries)}");
        output.WriteLine($"/health probes: {health.Count}, 503 from a draining replica: {notReady.Count}, 503 otherwise: 0");
        output.WriteLine($"audit records: {records.Count} for {reached.Count} requests; lost: {lost.Count}, doubled: {doubled.Count}; total {clock.Elapsed.TotalSeconds:0.0} s");
    }

    private enum OutcomeKind
    {
        Whole,
        CleanError,
        Spliced,
        Hung,
        Broken,
    }

    private sealed record Outcome(string RequestId, bool Stream, HttpStatusCode? Status, OutcomeKind Kind, string Detail, bool Audited, int Retries)
    {
        /// <summary>When the request was (last) sent, from the test's start.</summary>
        public TimeSpan Sent { get; init; }
    }

    /// <summary>One answer of <c>/health</c>: which replica, whether its rate limits were shared in Redis.</summary>
    private sealed record Probe(TimeSpan At, HttpStatusCode Status, string Body, string? Replica, bool RateLimitsShared);

    /// <summary>
    /// One client of one user: requests one after another, streams and JSON in turn, until told to stop. A 503 that a
    /// draining replica sends before it takes the request (<c>shutting_down</c>) is retried, as OpenAI's SDKs retry a 503.
    /// </summary>
    private static async Task RunWorkerAsync(DistributedApplication app, Stopwatch clock, string key, string name, ConcurrentQueue<Outcome> outcomes, CancellationToken stop)
    {
        using var client = Client(app, key);
        client.Timeout = Timeout.InfiniteTimeSpan;
        var expected = string.Concat(Tokens);
        for (var n = 0; !stop.IsCancellationRequested; n++)
        {
            var stream = n % 2 == 0;
            var requestId = $"chaos-{name}-{n}";
            var retries = 0;
            while (true)
            {
                var sent = clock.Elapsed;
                using var deadline = new CancellationTokenSource(Deadline);
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody(stream: stream)) };
                request.Headers.Add("x-request-id", requestId);
                request.Headers.ConnectionClose = true;
                try
                {
                    using var response = await client.SendAsync(request, deadline.Token);
                    var body = await response.Content.ReadAsStringAsync(deadline.Token);
                    if (response.StatusCode == HttpStatusCode.ServiceUnavailable && body.Contains("\"shutting_down\"", StringComparison.Ordinal) && retries < 3)
                    {
                        retries++;
                        continue;
                    }
                    outcomes.Enqueue(Judge(requestId, stream, response.StatusCode, body, expected, retries) with { Sent = sent });
                }
                catch (OperationCanceledException) when (deadline.IsCancellationRequested)
                {
                    outcomes.Enqueue(new Outcome(requestId, stream, null, OutcomeKind.Hung, $"no answer within {Deadline}", true, retries) { Sent = sent });
                }
                catch (HttpRequestException ex)
                {
                    outcomes.Enqueue(new Outcome(requestId, stream, null, OutcomeKind.Broken, ex.Message, false, retries) { Sent = sent });
                }
                break;
            }
        }
    }

    private static Outcome Judge(string requestId, bool stream, HttpStatusCode status, string body, string expected, int retries)
    {
        if (status != HttpStatusCode.OK)
        {
            var error = JsonNode.Parse(body)?["error"];
            // A key this replica could not look up while Redis was down is refused by authentication, before any
            // endpoint: the audit trail records the requests that reached one (docs/operations.md, "Audit trail").
            var audited = (string?)error?["code"] != "key_store_unavailable";
            return new Outcome(requestId, stream, status, error is null ? OutcomeKind.Broken : OutcomeKind.CleanError, $"{(int)status} {error?["code"]}", audited, retries);
        }
        if (!stream)
        {
            var content = (string?)JsonNode.Parse(body)!["choices"]![0]!["message"]!["content"];
            return new Outcome(requestId, stream, status, content == expected ? OutcomeKind.Whole : OutcomeKind.Spliced, content ?? "", true, retries);
        }
        try
        {
            var outcome = AnswerIntegrity.Check(body, expected);
            return new Outcome(requestId, stream, status, outcome == StreamOutcome.Whole ? OutcomeKind.Whole : OutcomeKind.CleanError,
                outcome == StreamOutcome.Whole ? "" : "stream_interrupted", true, retries);
        }
        catch (Exception ex) when (ex is Xunit.Sdk.XunitException)
        {
            return new Outcome(requestId, stream, status, OutcomeKind.Spliced, ex.Message, true, retries);
        }
    }

    /// <summary>Readiness as a load balancer probes it: a new connection each time, so every replica is asked in turn.</summary>
    private static async Task PollHealthAsync(DistributedApplication app, Stopwatch clock, ConcurrentQueue<Probe> health, CancellationToken stop)
    {
        using var client = app.CreateHttpClient("gateway", "http");
        using var ticks = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
        try
        {
            while (await ticks.WaitForNextTickAsync(stop))
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, "/health");
                request.Headers.ConnectionClose = true;
                try
                {
                    var at = clock.Elapsed;
                    using var response = await client.SendAsync(request, stop);
                    var body = await response.Content.ReadAsStringAsync(stop);
                    var checks = JsonNode.Parse(body)?["checks"];
                    health.Enqueue(new Probe(at, response.StatusCode, body, (string?)checks?["replica"]?["data"]?["replica"],
                        (string?)checks?["rate-limits"]?["status"] == "Healthy"));
                }
                catch (HttpRequestException)
                {
                    // A replica stopping closes its listener: the balancer's next try goes to another.
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    /// <summary>The gateway's replicas: their ids in the app model, and their processes.</summary>
    private static async Task<List<(string Id, int Pid)>> ReplicaIdsAsync(DistributedApplication app)
    {
        var replicas = new Dictionary<string, int>(StringComparer.Ordinal);
        using var cancel = new CancellationTokenSource(Deadline);
        await foreach (var change in app.ResourceNotifications.WatchAsync(cancel.Token))
        {
            if (change.Resource.Name == "gateway" && change.Snapshot.State?.Text == KnownResourceStates.Running
                && change.Snapshot.Properties.FirstOrDefault(p => p.Name == "executable.pid")?.Value is { } pid)
            {
                replicas[change.ResourceId] = Convert.ToInt32(pid, CultureInfo.InvariantCulture);
            }
            if (replicas.Count == 3)
            {
                break;
            }
        }
        return [.. replicas.Select(r => (r.Key, r.Value)).Order()];
    }

    /// <summary>
    /// The audit records of <paramref name="requests"/> once every one of them is in the stream (each replica writes within
    /// its batch delay; spilled records are replayed in the background once Redis is back): read again on each write.
    /// Whatever is in after the deadline, for the assertions to name what is lost.
    /// </summary>
    private static async Task<List<JsonNode>> AuditRecordsAsync(string connection, IConnectionMultiplexer redis, HashSet<string> requests)
    {
        async Task<List<JsonNode>> ReadAsync()
        {
            var entries = await redis.GetDatabase().StreamRangeAsync("onyx:{audit}");
            return entries.Select(e => JsonNode.Parse((string)e.Values.Single(v => v.Name == "record").Value!)!)
                .Where(r => requests.Contains((string)r["request_id"]!)).ToList();
        }
        try
        {
            return await RedisWrites.WaitForAsync(connection, ReadAsync,
                records => requests.All(id => records.Any(r => (string?)r["request_id"] == id)), Deadline, "an audit record of every request");
        }
        catch (TimeoutException)
        {
            return await ReadAsync();
        }
    }

    private static HttpClient Client(DistributedApplication app, string key)
    {
        var client = app.CreateHttpClient("gateway", "http");
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }
}
