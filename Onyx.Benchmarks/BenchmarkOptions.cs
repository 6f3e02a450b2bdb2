using System.Globalization;
using Onyx.Benchmarks.Load;

namespace Onyx.Benchmarks;

/// <summary>Command line: what to run and for how long.</summary>
internal sealed record BenchmarkOptions(bool Load, bool Micro, bool Quick, int SecondsPerTarget, int SoakMinutes, string? Only, string[] Remaining)
{
    public TimeSpan SoakSampleEvery => Quick ? TimeSpan.FromSeconds(5) : TimeSpan.FromSeconds(20);

    public TimeSpan SoakWarmUp => Quick ? TimeSpan.FromSeconds(20) : TimeSpan.FromMinutes(2);

    public static BenchmarkOptions Parse(string[] args)
    {
        var mode = args.FirstOrDefault(a => !a.StartsWith("--", StringComparison.Ordinal)) ?? "all";
        var quick = args.Contains("--quick");
        int Number(string name, int fallback)
        {
            var at = Array.IndexOf(args, name);
            return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
        }
        var onlyAt = Array.IndexOf(args, "--only");
        var only = onlyAt >= 0 && onlyAt + 1 < args.Length ? args[onlyAt + 1] : null;
        var gatewayAt = Array.IndexOf(args, "--gateway");
        var gateway = gatewayAt >= 0 && gatewayAt + 1 < args.Length ? Path.GetFullPath(args[gatewayAt + 1]) : null;
        var known = new HashSet<string> { "all", "load", "micro", "--quick", "--seconds", "--soak-minutes", "--only", "--concurrency", "--gateway" };
        var remaining = args.Where((a, i) => !known.Contains(a) && (i == 0 || args[i - 1] is not ("--seconds" or "--soak-minutes" or "--only" or "--concurrency" or "--gateway"))).ToArray();
        return mode switch
        {
            "all" or "load" or "micro" => new BenchmarkOptions(
                Load: mode != "micro",
                Micro: mode != "load",
                quick,
                Number("--seconds", quick ? 6 : 20),
                only is null || Names(only).Contains("soak") ? Number("--soak-minutes", quick ? 1 : 10) : 0,
                only,
                remaining) { Concurrency = args.Contains("--concurrency") ? Number("--concurrency", 1) : null, GatewayExecutable = gateway },
            _ => throw new ArgumentException($"Unknown mode '{mode}': use all, load or micro."),
        };
    }

    /// <summary>The load scenarios, or only those named by <c>--only</c> (comma-separated, e.g. <c>sse-c16,sse-c16-limits</c>).</summary>
    public IEnumerable<Scenario> LoadScenarios() => AllLoadScenarios()
        .Where(s => Only is null || Names(Only).Contains(s.Name))
        .Select(s => Concurrency is { } c ? s with { Concurrency = c } : s);

    /// <summary><c>--concurrency N</c> overrides every load scenario's concurrency (for exploring, not for the report).</summary>
    public int? Concurrency { get; init; }

    /// <summary><c>--gateway PATH</c>: a gateway executable to measure instead of the Release build (e.g. a Native AOT publish).</summary>
    public string? GatewayExecutable { get; init; }

    /// <summary>Whether the 1 000-stream memory scenario runs (always, unless <c>--only</c> names another).</summary>
    public bool RunSlowStreams => Only is null || Names(Only).Contains("slow-1000");

    /// <summary>The soak runs unless <c>--only</c> names a load scenario.</summary>
    public bool RunSoak => SoakMinutes > 0;

    private static string[] Names(string only) => only.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private IEnumerable<Scenario> AllLoadScenarios()
    {
        var duration = TimeSpan.FromSeconds(SecondsPerTarget);
        var slice = TimeSpan.FromSeconds(Quick ? 2 : 4);
        // The gateway runs with its rate limits off, so these measure its hop alone. A "-limits" scenario follows its
        // twin straight away, on a second gateway with API keys and limits in Redis: the difference is their cost.
        var jsonC16 = new Scenario("json-c16", "non-streaming", Stream: false, 16, 20, TimeSpan.Zero, duration, slice) { Floor = true };
        yield return jsonC16;
        yield return jsonC16.WithLimits();
        yield return new Scenario("json-c128", "non-streaming", Stream: false, 128, 20, TimeSpan.Zero, duration, slice);
        var sseC16 = new Scenario("sse-c16", "streaming, 20 chunks", Stream: true, 16, 20, TimeSpan.Zero, duration, slice) { Floor = true };
        yield return sseC16;
        yield return sseC16.WithLimits();
        yield return new Scenario("sse-c128", "streaming, 20 chunks", Stream: true, 128, 20, TimeSpan.Zero, duration, slice);
        // Paced like a real model (a token every 20 ms): the machine is not saturated, so the difference is the
        // gateway's own latency rather than queueing for the two cores.
        var sseC16Paced = new Scenario("sse-c16-paced", "streaming, 20 chunks paced like a model", Stream: true, 16, 20, TimeSpan.FromMilliseconds(20), duration, slice) { Floor = true };
        yield return sseC16Paced;
        yield return sseC16Paced.WithLimits();
        yield return new Scenario("sse-c128-paced", "streaming, 20 chunks paced like a model", Stream: true, 128, 20, TimeSpan.FromMilliseconds(20), duration, slice);
    }

    public Scenario SlowStreamsScenario() =>
        new("slow-1000", "1 000 concurrent slow streams, for memory", Stream: true, 1000, 20, TimeSpan.FromMilliseconds(100),
            TimeSpan.FromSeconds(Quick ? 10 : 30), TimeSpan.FromSeconds(Quick ? 5 : 15)) { Floor = true };

    public Scenario SoakScenario() =>
        new("soak", "moderate steady load, for leaks", Stream: true, 16, 20, TimeSpan.FromMilliseconds(5),
            TimeSpan.FromMinutes(SoakMinutes), TimeSpan.FromMinutes(SoakMinutes));

    public static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Onyx.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException("Run the benchmark from inside the Onyx repository (Onyx.sln not found).");
    }
}
