using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;
using Onyx.Benchmarks.Load;
using Onyx.Benchmarks.Micro;
using Onyx.Benchmarks.Reference;
using Onyx.Benchmarks.Report;
using Onyx.Benchmarks.Upstream;

namespace Onyx.Benchmarks;

/// <summary>A benchmark run: the micro-benchmarks, the load scenarios, the 1 000 slow streams and the soak, then the report.</summary>
internal static class BenchmarkRun
{
    private const string ChartFile = "benchmarks/ttft.png";
    private const string ResultsFile = "benchmarks/results.json";

    /// <summary>
    /// <c>chart</c>: draws the chart again from the last run's <c>docs/benchmarks/results.json</c>, measuring nothing
    /// (for a change to the chart alone; the figures stay the run's).
    /// </summary>
    public static async Task<int> RedrawChartAsync()
    {
        var docs = Path.Combine(BenchmarkOptions.FindRepositoryRoot(), "docs");
        await using var json = File.OpenRead(Path.Combine(docs, ResultsFile));
        var results = await JsonSerializer.DeserializeAsync<SavedResults>(json) ?? throw new InvalidDataException("results.json is empty.");
        Chart.WriteTimeToFirstToken(results.Load, Path.Combine(docs, ChartFile));
        Progress($"drew {Path.Combine(docs, ChartFile)} from results.json");
        return 0;
    }

    /// <summary>The part of <c>results.json</c> the chart is drawn from.</summary>
    private sealed record SavedResults([property: JsonPropertyName("load")] List<ScenarioResult> Load);

    private static void Progress(string line) => Console.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] {line}");

    public static async Task<int> RunAsync(string[] args)
    {
        var options = BenchmarkOptions.Parse(args);
        GatewayProcess.Executable = options.GatewayExecutable;
        var root = BenchmarkOptions.FindRepositoryRoot();
        var docs = Path.Combine(root, "docs");
        var artifacts = Path.Combine(docs, "benchmarks");
        Directory.CreateDirectory(artifacts);

        string? micro = null;
        if (options.Micro)
        {
            var microDirectory = Path.Combine(artifacts, "micro");
            MicroBenchmarks.Run(options.Remaining, microDirectory);
            micro = Directory.EnumerateFiles(microDirectory, "*-report-github.md", SearchOption.AllDirectories)
                .OrderBy(f => f, StringComparer.Ordinal)
                .Select(File.ReadAllText)
                .DefaultIfEmpty()
                .Aggregate((a, b) => a + "\n" + b);
        }

        if (!options.Load)
        {
            if (micro is not null)
            {
                await File.WriteAllTextAsync(Path.Combine(artifacts, "micro.md"), micro);
            }
            return 0;
        }

        await using var upstream = await UpstreamProcess.StartAsync();
        await using var gateway = await GatewayProcess.StartWithoutLimitsAsync(root, upstream.Root);
        // The floor: a bare .NET proxy beside the gateway, for the scenarios marked Floor.
        await using var bare = options.LoadScenarios().Any(s => s.Floor) || options.RunSlowStreams ? await BareProxyProcess.StartAsync(upstream.Root) : null;
        using var http = new HttpClient(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = int.MaxValue,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            UseProxy = false,
            UseCookies = false,
        })
        { Timeout = TimeSpan.FromMinutes(2) };
        var runner = new LoadRunner(http, upstream, gateway, bare);
        var load = new List<ScenarioResult>();
        var scenarios = options.LoadScenarios().ToList();
        {
            // The "-limits" scenarios' gateway and its Redis live only while the load scenarios run.
            await using var redis = scenarios.Any(s => s.Limits) ? await RedisProcess.StartAsync() : null;
            await using var limitedGateway = redis is null ? null : await GatewayProcess.StartWithLimitsAsync(root, upstream.Root, redis, http);
            var limitedRunner = limitedGateway is null ? null : new LoadRunner(http, upstream, limitedGateway);
            foreach (var scenario in scenarios)
            {
                Progress($"{scenario.Name}: {scenario.Description}");
                var result = await (scenario.Limits ? limitedRunner! : runner).RunAsync(scenario, Progress);
                if (result.Limiter is { } limiter)
                {
                    Progress($"{scenario.Name}: {result.Gateway.Refused} refused (429), {result.Gateway.Errors} errors, " +
                        $"{result.Gateway.RateLimitHeaders} of {result.Gateway.Requests} answers with x-ratelimit headers, " +
                        $"{limiter.RedisScriptCalls} Redis scripts ({limiter.AdmittedInRedis} admitted, {limiter.RecordedInRedis} recorded in Redis), {limiter.FallbacksToMemory} fallbacks to memory (5002) " +
                        $"(+{limiter.FallbacksDuringWarmUp} in warm-up), rate-limits health: {limiter.HealthAtEnd}");
                }
                load.Add(result);
            }
        }

        ScenarioResult? slow = null;
        if (options.RunSlowStreams)
        {
            var slowScenario = options.SlowStreamsScenario();
            Progress($"{slowScenario.Name}: {slowScenario.Description}");
            slow = await runner.RunAsync(slowScenario, Progress);
        }

        SoakResult? soak = null;
        if (options.SoakMinutes > 0)
        {
            // A fresh gateway process, so memory left over from the heavier scenarios does not pass for a trend.
            await using var soakGateway = await GatewayProcess.StartWithoutLimitsAsync(root, upstream.Root);
            var soakRunner = new LoadRunner(http, upstream, soakGateway);
            var soakScenario = options.SoakScenario();
            Progress($"{soakScenario.Name}: {soakScenario.Description}, {options.SoakMinutes} min on a fresh gateway process");
            using var counters = RuntimeCounters.Start(soakGateway.ProcessId);
            var recorder = new LatencyRecorder("gateway");
            var samples = new List<SoakSample>();
            var clock = Stopwatch.StartNew();
            var running = soakRunner.RunGatewayAsync(soakScenario, recorder, soakScenario.DurationPerTarget);
            using var timer = new PeriodicTimer(options.SoakSampleEvery);
            while (await timer.WaitForNextTickAsync() && !running.IsCompleted)
            {
                var sample = soakGateway.Sample();
                var gcHeap = counters.GcHeapMegabytes;
                var live = await LiveHeap.MeasureMegabytesAsync(soakGateway.ProcessId, TimeSpan.FromSeconds(10));
                samples.Add(new SoakSample(clock.Elapsed, recorder.Requests, recorder.Errors, sample.RssBytes / 1048576.0, live, gcHeap));
                Progress($"soak: {clock.Elapsed:mm\\:ss} {recorder.Requests} req, {recorder.Errors} errors, RSS {sample.RssBytes / 1048576.0:0.0} MB, " +
                    $"live heap {live:0.0} MB, GC heap counter {gcHeap:0.0} MB");
            }
            await running;
            recorder.Wall = clock.Elapsed;
            soak = new SoakResult(soakScenario, options.SoakWarmUp, samples, recorder.Summarize());
        }

        if (load.Count > 0)
        {
            Chart.WriteTimeToFirstToken(load, Path.Combine(docs, ChartFile));
        }
        var command = "dotnet run -c Release --project Onyx.Benchmarks" + (args.Length > 0 ? " -- " + string.Join(' ', args) : "");
        var report = MarkdownReport.Write(root, command, load, slow, soak, micro, ChartFile);
        await File.WriteAllTextAsync(Path.Combine(docs, "benchmarks.md"), report);
        await File.WriteAllTextAsync(Path.Combine(docs, ResultsFile), JsonSerializer.Serialize(new { load, slow, soak }, new JsonSerializerOptions { WriteIndented = true }));
        Progress($"wrote {Path.Combine(docs, "benchmarks.md")}");
        return 0;
    }
}
