using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Onyx.Benchmarks.Load;

namespace Onyx.Benchmarks.Report;

/// <summary>The targets of issue #4, checked against a run.</summary>
internal static class Targets
{
    public const double AddedTtftP50Ms = 0.5;
    public const double AddedTtftP99Ms = 2.0;
    public const double MinThroughputRatio = 0.25;
    public const double MaxPeakRssMegabytes = 120;
}

/// <summary>Writes <c>docs/benchmarks.md</c>: machine, commit, command, tables, targets met or missed.</summary>
internal static class MarkdownReport
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static string Write(string repositoryRoot, string command, IReadOnlyList<ScenarioResult> load, ScenarioResult? slowStreams,
        SoakResult? soak, string? microMarkdown, string chartFile)
    {
        var md = new StringBuilder();
        md.AppendLine("# Benchmarks");
        md.AppendLine();
        md.AppendLine("What the gateway costs, measured: every scenario runs against a fast fake upstream twice in one run, in");
        md.AppendLine("interleaved slices — straight to the upstream (**direct**) and **through the gateway** — so both share the");
        md.AppendLine("same machine noise. The gateway's cost is the difference and the ratio. Load generator, fake upstream and");
        md.AppendLine("gateway all share this machine's cores.");
        md.AppendLine();
        md.AppendLine($"- **Date:** {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC");
        md.AppendLine($"- **Commit:** `{Git(repositoryRoot, "rev-parse --short HEAD")}`{(Git(repositoryRoot, "status --porcelain --untracked-files=no -- . :!docs").Length > 0 ? " (with uncommitted changes)" : "")}");
        md.AppendLine($"- **Machine:** {Environment.ProcessorCount} cores ({CpuModel()}), {MemoryGigabytes():0} GiB, {RuntimeInformation.OSDescription}, .NET {Environment.Version}");
        md.AppendLine($"- **Command:** `{command}`");
        md.AppendLine(GatewayProcess.Executable is { } build
            ? $"- **Gateway:** `{build}` (given with `--gateway`), its own process, default settings except per-user rate limits off"
            : "- **Gateway:** Release build, its own process, default settings except per-user rate limits off");
        md.AppendLine("  (`Onyx__RateLimits__Enabled=false`; no key, open on loopback), call log on (JSON lines to stdout, read and dropped),");
        md.AppendLine("  Prometheus metrics on, and the audit trail on: without Redis, every record goes to the gateway's spill file (fsync'd per batch).");
        if (load.Any(r => r.Scenario.Limits))
        {
            md.AppendLine("  The `-limits` scenarios run on a second gateway process with these features on: a master key");
            md.AppendLine("  (`LITELLM_MASTER_KEY`), a key from `POST /key/generate` sent with every request, and per-user limits counted");
            md.AppendLine($"  in a local `redis-server` (`ConnectionStrings__redis`); the key's limits (rpm {GatewayProcess.KeyRpmLimit}, tpm {GatewayProcess.KeyTpmLimit}) refuse nothing.");
            md.AppendLine("  Its audit records go to a Redis stream in the same `redis-server`, and each key's spend is added up there.");
        }
        md.AppendLine();
        md.AppendLine($"![Time to first token, direct vs gateway]({chartFile})");
        md.AppendLine();

        md.AppendLine("## Targets");
        md.AppendLine();
        md.AppendLine("The added time to first token is read at concurrency 16 twice: with the upstream paced like a real model");
        md.AppendLine("(`-paced`: a token every 20 ms, the cores not saturated), where the difference is the gateway's own latency;");
        md.AppendLine("and with tokens sent as fast as possible (the cores saturated by load generator, upstream and gateway together),");
        md.AppendLine("where the difference is mostly queueing for the two cores behind the gateway's extra hop. In the paced");
        md.AppendLine("scenarios the workers start one after another, spread over one stream's length: every paced stream lasts the");
        md.AppendLine("same time, so workers started in one instant would stay in lock-step and reach the proxy all in the same");
        md.AppendLine("millisecond, again and again, and the figure would be the wait of the last in that queue. Throughput ratios come");
        md.AppendLine("from the unpaced scenarios, where the machine is the limit. The `-limits` scenarios hold the later features");
        md.AppendLine("(API keys, rate limits in Redis) to the same targets.");
        md.AppendLine();
        md.AppendLine("The last column is the floor: the same figure for a bare .NET reverse proxy (Kestrel in, one `HttpClient` out,");
        md.AppendLine("bytes copied as they come, nothing else; `Onyx.Benchmarks/Reference/BareProxy.cs`) measured in the same");
        md.AppendLine("interleaved slices, with the gateway's runtime settings. Where the floor misses a target too, no .NET proxy");
        md.AppendLine("reaches it on this machine; the distance between the gateway and the floor is the gateway's own cost.");
        md.AppendLine();
        md.AppendLine("| target | gateway | | bare .NET proxy (floor) |");
        md.AppendLine("|---|---|---|---|");
        foreach (var result in load.Where(r => r.Scenario.Concurrency == 16 && r.Scenario.Stream))
        {
            var p50 = result.Gateway.TtftP50 - result.Direct.TtftP50;
            var p99 = result.Gateway.TtftP99 - result.Direct.TtftP99;
            var floorP50 = result.Bare is { } b50 ? $"{F(b50.TtftP50 - result.Direct.TtftP50, 3)} ms" : "";
            var floorP99 = result.Bare is { } b99 ? $"{F(b99.TtftP99 - result.Direct.TtftP99, 3)} ms" : "";
            md.AppendLine($"| added TTFT p50 ≤ {Targets.AddedTtftP50Ms} ms ({result.Scenario.Name}) | {F(p50, 3)} ms | {Check(p50 <= Targets.AddedTtftP50Ms)} | {floorP50} |");
            md.AppendLine($"| added TTFT p99 ≤ {Targets.AddedTtftP99Ms} ms ({result.Scenario.Name}) | {F(p99, 3)} ms | {Check(p99 <= Targets.AddedTtftP99Ms)} | {floorP99} |");
        }
        foreach (var result in load.Where(r => r.Scenario.TokenDelay == TimeSpan.Zero))
        {
            var ratio = result.Gateway.Throughput / result.Direct.Throughput;
            var floor = result.Bare is { } b ? (b.Throughput / result.Direct.Throughput).ToString("P1", Invariant) : "";
            md.AppendLine($"| gateway throughput ≥ {Targets.MinThroughputRatio:P0} of direct ({result.Scenario.Name}) | {ratio:P1} | {Check(ratio >= Targets.MinThroughputRatio)} | {floor} |");
        }
        foreach (var result in load.Where(r => r.Scenario.Limits))
        {
            md.AppendLine($"| {result.Scenario.Name}: no 429s, no errors, every answer admitted by the limiter | {LimiterFigures(result.Gateway)} | {Check(AllAdmitted(result.Gateway))} | |");
        }
        if (slowStreams is not null)
        {
            var peak = slowStreams.GatewayPeakRssBytes / 1048576.0;
            var floorPeak = slowStreams.Bare is null ? "" : $"{F(slowStreams.BarePeakRssBytes / 1048576.0, 1)} MB";
            var floorClean = slowStreams.Bare is { } b ? $"{b.Errors} errors, {b.Stalls} stalls" : "";
            md.AppendLine($"| {slowStreams.Scenario.Concurrency} concurrent slow streams: peak RSS ≤ {Targets.MaxPeakRssMegabytes} MB | {F(peak, 1)} MB | {Check(peak <= Targets.MaxPeakRssMegabytes)} | {floorPeak} |");
            md.AppendLine($"| {slowStreams.Scenario.Concurrency} concurrent slow streams: no errors, no stalls | {slowStreams.Gateway.Errors} errors, {slowStreams.Gateway.Stalls} stalls | {Check(NoErrorsNoStalls(slowStreams.Gateway))} | {floorClean} |");
        }
        if (soak is not null)
        {
            md.AppendLine($"| soak {soak.Scenario.DurationPerTarget.TotalMinutes:0} min: RSS and GC heap flat after warm-up, zero errors | RSS {F(soak.RssGrowthMegabytes, 1, signed: true)} MB ({F(soak.RssSlopeMegabytesPerMinute, 2, signed: true)} MB/min), live GC heap {F(soak.LiveHeapGrowthMegabytes, 1, signed: true)} MB ({F(soak.LiveHeapSlopeMegabytesPerMinute, 2, signed: true)} MB/min), {soak.Gateway.Errors} errors | {Check(soak.Flat)} | |");
        }
        md.AppendLine();
        WriteMissed(md, load, slowStreams, soak);

        md.AppendLine("## Load scenarios");
        md.AppendLine();
        md.AppendLine("Times in milliseconds. TTFT: time to the first content token (for non-streaming requests, the whole answer).");
        md.AppendLine("Proxy CPU: the CPU time of the process in the middle (the gateway; in the bare proxy's slices, the bare proxy)");
        md.AppendLine("during that target's slices, as % of one core. The direct rows show the idle gateway's background work.");
        md.AppendLine();
        md.AppendLine("| scenario | target | requests | req/s | TTFT p50 | TTFT p90 | TTFT p99 | total p50 | total p99 | errors | proxy CPU | proxy peak RSS |");
        md.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var result in load.Concat(slowStreams is null ? [] : [slowStreams]))
        {
            foreach (var t in result.Bare is { } floor ? new[] { result.Direct, floor, result.Gateway } : [result.Direct, result.Gateway])
            {
                var rss = t == result.Gateway ? $"{result.GatewayPeakRssBytes / 1048576.0:0.0} MB" : t == result.Bare ? $"{result.BarePeakRssBytes / 1048576.0:0.0} MB" : "";
                md.AppendLine($"| {result.Scenario.Name} | {t.Target} | {t.Requests} | {F(t.Throughput, 0)} | {F(t.TtftP50, 3)} | {F(t.TtftP90, 3)} | {F(t.TtftP99, 3)} | {F(t.TotalP50, 3)} | {F(t.TotalP99, 3)} | {t.Errors}{(t.Stalls > 0 ? $" (+{t.Stalls} stalls)" : "")} | {F(t.GatewayCpuPercent, 0)} % | {rss} |");
            }
            if (result.Bare is { } b)
            {
                md.AppendLine($"| {result.Scenario.Name} | bare proxy − direct | | {b.Throughput / result.Direct.Throughput:P1} | {F(b.TtftP50 - result.Direct.TtftP50, 3, signed: true)} | {F(b.TtftP90 - result.Direct.TtftP90, 3, signed: true)} | {F(b.TtftP99 - result.Direct.TtftP99, 3, signed: true)} | {F(b.TotalP50 - result.Direct.TotalP50, 3, signed: true)} | {F(b.TotalP99 - result.Direct.TotalP99, 3, signed: true)} | | | |");
            }
            md.AppendLine($"| {result.Scenario.Name} | **gateway − direct** | | **{result.Gateway.Throughput / result.Direct.Throughput:P1}** | **{F(result.Gateway.TtftP50 - result.Direct.TtftP50, 3, signed: true)}** | {F(result.Gateway.TtftP90 - result.Direct.TtftP90, 3, signed: true)} | **{F(result.Gateway.TtftP99 - result.Direct.TtftP99, 3, signed: true)}** | {F(result.Gateway.TotalP50 - result.Direct.TotalP50, 3, signed: true)} | {F(result.Gateway.TotalP99 - result.Direct.TotalP99, 3, signed: true)} | | | |");
        }
        md.AppendLine();
        md.AppendLine("Scenarios:");
        md.AppendLine();
        foreach (var result in load.Concat(slowStreams is null ? [] : [slowStreams]))
        {
            var s = result.Scenario;
            md.AppendLine($"- `{s.Name}`: {s.Description}; {s.Concurrency} concurrent requests, {s.Tokens} tokens{(s.TokenDelay > TimeSpan.Zero ? $" one every {s.TokenDelay.TotalMilliseconds:0} ms" : " sent as fast as possible")}, {s.DurationPerTarget.TotalSeconds:0} s per target in {s.Slice.TotalSeconds:0} s slices{(s.StartSpread > TimeSpan.Zero ? $"; the workers' first requests spread over {s.StartSpread.TotalMilliseconds:0} ms (one stream's length)" : "")}{WarmUp(result.WarmUp)}.");
        }
        if (slowStreams is not null)
        {
            var m = slowStreams.GatewayAtPeak;
            md.AppendLine();
            md.AppendLine($"What the gateway's largest RSS reading during `{slowStreams.Scenario.Name}` ({m.RssBytes / 1048576.0:0.0} MB) is made of: " +
                $"{m.AnonBytes / 1048576.0:0.0} MB anonymous (GC heaps, stacks, native buffers), {m.FileBytes / 1048576.0:0.0} MB file-backed " +
                $"(the runtime and assemblies, mapped and shared with other .NET processes), {m.ShmemBytes / 1048576.0:0.0} MB shared " +
                "(the JIT's double-mapped code).");
        }
        foreach (var error in load.Concat(slowStreams is null ? [] : [slowStreams]).SelectMany(r => new[] { r.Direct, r.Bare, r.Gateway }).OfType<TargetSummary>().Where(t => t.FirstError is not null))
        {
            md.AppendLine($"- first error seen ({error.Target}): {error.FirstError}");
        }
        md.AppendLine();

        WriteFloor(md, load.Concat(slowStreams is null ? [] : [slowStreams]).ToList());
        WriteLimiterCost(md, load);

        if (soak is not null)
        {
            md.AppendLine("## Soak");
            md.AppendLine();
            md.AppendLine($"{soak.Scenario.Description}: {soak.Scenario.Concurrency} concurrent streams of {soak.Scenario.Tokens} tokens, one every {soak.Scenario.TokenDelay.TotalMilliseconds:0} ms, through the gateway for {soak.Scenario.DurationPerTarget.TotalMinutes:0} minutes ({soak.Gateway.Requests} requests, {F(soak.Gateway.Throughput, 0)} req/s, {soak.Gateway.Errors} errors). The soak runs on a fresh gateway process. Warm-up: the first {soak.WarmUp.TotalSeconds:0} s. Growth = mean of the last three readings minus the mean of the first three after warm-up (allowed: {SoakResult.AllowedGrowthMegabytes} MB); the slope is a least-squares fit over the readings after warm-up. The heap judged is the live heap: at each reading the benchmark asks the gateway's runtime over EventPipe for a full, blocking collection (as `dotnet-gcdump` does) and reads what it leaves, every generation with large and pinned objects. The runtime's `gc-heap-size` counter, read just before, is shown too; it also holds the garbage allocated since the last collection, so it swings by several MB with every gen0 cycle, depending on when a reading falls.");
            md.AppendLine();
            md.AppendLine("| at | requests | errors | RSS (MB) | live heap (MB) | `gc-heap-size` counter (MB) |");
            md.AppendLine("|---:|---:|---:|---:|---:|---:|");
            foreach (var sample in soak.Samples)
            {
                md.AppendLine($"| {sample.At.TotalSeconds:0} s | {sample.Requests} | {sample.Errors} | {F(sample.RssMegabytes, 1)} | {F(sample.LiveHeapMegabytes, 1)} | {F(sample.GcHeapMegabytes, 1)} |");
            }
            md.AppendLine();
        }

        if (microMarkdown is not null)
        {
            md.AppendLine("## Hot path (BenchmarkDotNet)");
            md.AppendLine();
            md.AppendLine(microMarkdown);
            md.AppendLine();
        }
        return md.ToString();
    }

    /// <summary>The gateway next to the bare proxy from the same slices: what the gateway's own work costs.</summary>
    private static void WriteFloor(StringBuilder md, IReadOnlyList<ScenarioResult> results)
    {
        var floored = results.Where(r => r.Bare is not null).ToList();
        if (floored.Count == 0)
        {
            return;
        }
        md.AppendLine("## The gateway against the floor");
        md.AppendLine();
        md.AppendLine("The bare .NET proxy does the least any proxy does: it accepts the request, opens (or reuses) a connection to the");
        md.AppendLine("upstream, and copies bytes back. The gateway adds its own work on top: it parses and validates the request,");
        md.AppendLine("routes it with a circuit breaker, reads each chunk for tokens, writes the call log, metrics and the audit record.");
        md.AppendLine("Both run the same runtime settings (Server GC, tiered JIT) in the same interleaved slices.");
        md.AppendLine();
        md.AppendLine("| scenario | CPU µs/request bare | gateway | **gateway − bare** | TTFT p50 bare | gateway | **Δ** | TTFT p99 bare | gateway | **Δ** | peak RSS bare | gateway |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in floored)
        {
            var b = r.Bare!;
            var g = r.Gateway;
            md.AppendLine($"| {r.Scenario.Name} | {F(b.GatewayCpuMicrosecondsPerRequest, 0)} | {F(g.GatewayCpuMicrosecondsPerRequest, 0)} | **{F(g.GatewayCpuMicrosecondsPerRequest - b.GatewayCpuMicrosecondsPerRequest, 0, signed: true)}** " +
                $"| {F(b.TtftP50, 3)} | {F(g.TtftP50, 3)} | **{F(g.TtftP50 - b.TtftP50, 3, signed: true)}** | {F(b.TtftP99, 3)} | {F(g.TtftP99, 3)} | **{F(g.TtftP99 - b.TtftP99, 3, signed: true)}** " +
                $"| {r.BarePeakRssBytes / 1048576.0:0.0} MB | {r.GatewayPeakRssBytes / 1048576.0:0.0} MB |");
        }
        md.AppendLine();
    }

    /// <summary>
    /// Each missed target of this run: by how much, and why, from this run's own figures (the floor, the limits-off
    /// twin, CPU per request, what the peak RSS is made of), so a reader does not have to work it out from the tables.
    /// </summary>
    private static void WriteMissed(StringBuilder md, IReadOnlyList<ScenarioResult> load, ScenarioResult? slowStreams, SoakResult? soak)
    {
        var lines = new List<string>();
        ScenarioResult? Twin(ScenarioResult r) => load.FirstOrDefault(t => t.Scenario.Name == r.Scenario.LimitsOffTwin);
        string TtftWhy(ScenarioResult r, Func<TargetSummary, double> percentile, double added, double target)
        {
            if (r.Scenario.Limits && Twin(r) is { } twin)
            {
                return $"its limits-off twin `{twin.Scenario.Name}` adds {F(percentile(twin.Gateway) - percentile(twin.Direct), 3)} ms in this run: the rest is the admission script's round trip to Redis, which every request waits for before the upstream is called (the count is exact across replicas only if it is decided before the call)";
            }
            var cpu = r.Gateway.GatewayCpuMicrosecondsPerRequest;
            if (r.Bare is not { } bare)
            {
                return r.Scenario.TokenDelay == TimeSpan.Zero
                    ? $"with the two cores saturated, the added time is queueing behind the gateway's {F(cpu, 0)} µs of CPU per request (no floor or limits-off twin in this run)"
                    : "the cores are not saturated here, so this is the gateway's own latency";
            }
            var floor = percentile(bare) - percentile(r.Direct);
            var overFloor = F(cpu - bare.GatewayCpuMicrosecondsPerRequest, 0);
            if (r.Scenario.TokenDelay != TimeSpan.Zero)
            {
                return $"the cores are not saturated here, so this is the gateway's own latency; the bare .NET proxy adds {F(floor, 3)} ms in the same slices, so the gateway's own work is {F(added - floor, 3, signed: true)} ms of it";
            }
            return floor > target
                ? $"the bare .NET proxy misses it too ({F(floor, 3)} ms): with the two cores saturated by load generator, upstream and proxy, the added time is mostly queueing for a core behind the extra hop; the gateway's own work on top is {overFloor} µs of CPU per request more than the floor's (table below)"
                : $"the bare .NET proxy adds {F(floor, 3)} ms: the rest is the gateway's own work, {overFloor} µs of CPU per request more than the floor's, queued behind the saturated cores";
        }
        foreach (var r in load.Where(r => r.Scenario.Concurrency == 16 && r.Scenario.Stream))
        {
            foreach (var (label, target, percentile) in new (string, double, Func<TargetSummary, double>)[]
            {
                ("p50", Targets.AddedTtftP50Ms, t => t.TtftP50),
                ("p99", Targets.AddedTtftP99Ms, t => t.TtftP99),
            })
            {
                var added = percentile(r.Gateway) - percentile(r.Direct);
                if (added > target)
                {
                    lines.Add($"- **added TTFT {label} ({r.Scenario.Name})**: {F(added, 3)} ms against ≤ {target} ms, missed by {F(added - target, 3)} ms. Why: {TtftWhy(r, percentile, added, target)}.");
                }
            }
        }
        foreach (var r in load.Where(r => r.Scenario.TokenDelay == TimeSpan.Zero))
        {
            var ratio = r.Gateway.Throughput / r.Direct.Throughput;
            if (ratio >= Targets.MinThroughputRatio)
            {
                continue;
            }
            var points = (Targets.MinThroughputRatio - ratio) * 100;
            var why = r.Scenario.Limits && Twin(r) is { } twin
                ? $"limits off, the same load reaches {twin.Gateway.Throughput / twin.Direct.Throughput:P1} (`{twin.Scenario.Name}`); with limits on each request also runs an admission script in Redis and has its tokens recorded by another, and redis-server shares the two cores (CPU per request, gateway + Redis: {F(r.Gateway.GatewayCpuMicrosecondsPerRequest + r.Gateway.RedisCpuMicrosecondsPerRequest, 0)} µs against {F(twin.Gateway.GatewayCpuMicrosecondsPerRequest, 0)} µs)"
                : r.Bare is { } b
                    ? $"the bare .NET proxy reaches {b.Throughput / r.Direct.Throughput:P1}: on two cores shared with the load generator and the upstream, throughput follows CPU per request, and the gateway spends {F(r.Gateway.GatewayCpuMicrosecondsPerRequest, 0)} µs against the floor's {F(b.GatewayCpuMicrosecondsPerRequest, 0)} µs (parsing and validating the request, routing with a circuit breaker, counting tokens, the call log, metrics and the audit record)"
                    : $"the gateway spends {F(r.Gateway.GatewayCpuMicrosecondsPerRequest, 0)} µs of CPU per request on cores it shares with the load generator and the upstream";
            lines.Add($"- **throughput ({r.Scenario.Name})**: {ratio:P1} of direct against ≥ {Targets.MinThroughputRatio:P0}, missed by {F(points, 1)} points. Why: {why}.");
        }
        if (slowStreams is not null && slowStreams.GatewayPeakRssBytes / 1048576.0 > Targets.MaxPeakRssMegabytes)
        {
            var peak = slowStreams.GatewayPeakRssBytes / 1048576.0;
            var m = slowStreams.GatewayAtPeak;
            var runtime = (m.FileBytes + m.ShmemBytes) / 1048576.0;
            var floor = slowStreams.Bare is null ? "" : $"the bare .NET proxy peaks at {F(slowStreams.BarePeakRssBytes / 1048576.0, 1)} MB in the same slices, {(slowStreams.BarePeakRssBytes / 1048576.0 > Targets.MaxPeakRssMegabytes ? "over the target too" : "under the target")}; ";
            lines.Add($"- **peak RSS ({slowStreams.Scenario.Name})**: {F(peak, 1)} MB against ≤ {Targets.MaxPeakRssMegabytes} MB, missed by {F(peak - Targets.MaxPeakRssMegabytes, 1)} MB. " +
                $"Why: {floor}at the largest reading the runtime's mapped files and the JIT's double-mapped code alone hold {F(runtime, 1)} MB, " +
                $"and the GC heaps, stacks and buffers of {slowStreams.Scenario.Concurrency} open streams the other {F(m.AnonBytes / 1048576.0, 1)} MB. " +
                "The runtime settings tried against it (workstation GC, smaller GC budgets, Native AOT) and what each reached are in docs/benchmark-history.md.");
        }
        // Errors, stalls and growth have no cause this run's figures can name: the line says what was seen and where to look.
        foreach (var r in load.Where(r => r.Scenario.Limits && !AllAdmitted(r.Gateway)))
        {
            lines.Add($"- **{r.Scenario.Name}: no 429s, no errors, every answer admitted**: {LimiterFigures(r.Gateway)}. Why: {FirstErrorOrUnknown(r.Gateway)}; the limiter's table below shows whether the gateway fell back to memory.");
        }
        if (slowStreams is not null && !NoErrorsNoStalls(slowStreams.Gateway))
        {
            lines.Add($"- **no errors, no stalls ({slowStreams.Scenario.Name})**: {slowStreams.Gateway.Errors} errors, {slowStreams.Gateway.Stalls} stalls in {slowStreams.Gateway.Requests} streams. Why: {FirstErrorOrUnknown(slowStreams.Gateway)}.");
        }
        if (soak is not null && !soak.Flat)
        {
            lines.Add($"- **soak flat, zero errors**: RSS {F(soak.RssGrowthMegabytes, 1, signed: true)} MB, live GC heap {F(soak.LiveHeapGrowthMegabytes, 1, signed: true)} MB (allowed {SoakResult.AllowedGrowthMegabytes} MB), {soak.Gateway.Errors} errors in {soak.Gateway.Requests} requests. Why: not known from this run; {FirstErrorOrUnknown(soak.Gateway)}; the soak table below shows when the growth happened, and a `dotnet-gcdump` of the gateway during a longer soak shows what grew.");
        }
        if (lines.Count == 0)
        {
            return;
        }
        md.AppendLine("### Missed: by how much, and why");
        md.AppendLine();
        foreach (var line in lines)
        {
            md.AppendLine(line);
        }
        md.AppendLine();
    }

    /// <summary>The <c>-limits</c> scenarios' key check: nothing refused or failed, and every answer went through the limiter.</summary>
    private static bool AllAdmitted(TargetSummary g) => g.Refused == 0 && g.Errors == 0 && g.RateLimitHeaders == g.Requests;

    private static string LimiterFigures(TargetSummary g) =>
        $"{g.Refused} × 429, {g.Errors - g.Refused} other errors, {g.RateLimitHeaders} of {g.Requests} answers with `x-ratelimit-*` headers";

    private static bool NoErrorsNoStalls(TargetSummary g) => g.Errors == 0 && g.Stalls == 0;

    private static string FirstErrorOrUnknown(TargetSummary target) =>
        target.FirstError is { } error ? $"the first error seen was: {error}" : "no error message was recorded";

    /// <summary>Each <c>-limits</c> scenario against its limits-off twin from the same run: what the limiter adds per request.</summary>
    private static void WriteLimiterCost(StringBuilder md, IReadOnlyList<ScenarioResult> load)
    {
        var limited = load.Where(r => r.Scenario.Limits).ToList();
        if (limited.Count == 0)
        {
            return;
        }
        md.AppendLine("## What the rate limiter costs");
        md.AppendLine();
        md.AppendLine("Each `-limits` scenario next to its twin with limits off, from this run: the twins run back to back, each");
        md.AppendLine("against its own gateway process. With limits on, every request carries a generated API key (hashed and found in");
        md.AppendLine("the replica's 30 s cache of the keys in Redis), is admitted by a Lua script in Redis on the request path, and");
        md.AppendLine("after the call its tokens are added by a second script (off the response's path). Redis shares the two cores;");
        md.AppendLine("its CPU time is counted per request too (at the paced scenarios' few requests per second, CPU per request is");
        md.AppendLine("mostly the processes' background work). Δ = limits on − limits off; the direct rows of both scenarios in the");
        md.AppendLine("table above show how much of a Δ is machine noise (the direct path is the same in both). Both gateways write the");
        md.AppendLine("audit trail: limits off to the spill file, limits on to Redis (with the key's spend), so Δ holds that difference too.");
        md.AppendLine();
        md.AppendLine("| scenario | gateway TTFT p50 off | on | **Δ** | TTFT p99 off | on | **Δ** | gateway req/s off | on | **on / off** | CPU µs/request off | on (gateway + Redis) | **Δ** |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var on in limited)
        {
            var g = on.Gateway;
            var cpuOn = g.GatewayCpuMicrosecondsPerRequest + g.RedisCpuMicrosecondsPerRequest;
            var onCpu = $"{F(cpuOn, 0)} ({F(g.GatewayCpuMicrosecondsPerRequest, 0)} + {F(g.RedisCpuMicrosecondsPerRequest, 0)})";
            if (load.FirstOrDefault(r => r.Scenario.Name == on.Scenario.LimitsOffTwin) is not { } twin)
            {
                md.AppendLine($"| {on.Scenario.Name} (`{on.Scenario.LimitsOffTwin}` not in this run) | | {F(g.TtftP50, 3)} | | | {F(g.TtftP99, 3)} | | | {F(g.Throughput, 0)} | | | {onCpu} | |");
                continue;
            }
            var off = twin.Gateway;
            md.AppendLine($"| {on.Scenario.Name} vs {twin.Scenario.Name} | {F(off.TtftP50, 3)} | {F(g.TtftP50, 3)} | **{F(g.TtftP50 - off.TtftP50, 3, signed: true)}** " +
                $"| {F(off.TtftP99, 3)} | {F(g.TtftP99, 3)} | **{F(g.TtftP99 - off.TtftP99, 3, signed: true)}** " +
                $"| {F(off.Throughput, 0)} | {F(g.Throughput, 0)} | **{g.Throughput / off.Throughput:P1}** " +
                $"| {F(off.GatewayCpuMicrosecondsPerRequest, 0)} | {onCpu} | **{F(cpuOn - off.GatewayCpuMicrosecondsPerRequest, 0, signed: true)}** |");
        }
        md.AppendLine();
        md.AppendLine("Did every request pay the whole path? A request whose Redis answer takes longer than");
        md.AppendLine("`Onyx:RateLimits:RedisTimeout` (50 ms) is decided in memory instead; after three such answers in a row the");
        md.AppendLine("replica stops asking Redis and limits in memory until a ping (every second) finds it back: log events 5002 and");
        md.AppendLine("5004, counted from the gateway's console log. Each request counted in Redis is admitted by a Lua script");
        md.AppendLine("and its tokens recorded by another. Admissions that arrive while one is in flight go together in the next script,");
        md.AppendLine("and so do the tokens of calls that finish while a record is being written: under load there are fewer scripts than calls (scripts and their time: Redis's");
        md.AppendLine("`INFO commandstats`). Admitted and recorded requests are counted from the limiter's own entries in Redis:");
        md.AppendLine("after each round of slices, the benchmark user's request and token entries timed (by Redis's clock) since the");
        md.AppendLine("round before (every benchmark call has tokens, so each recorded call leaves one token entry); 1.00 of each per answer means every");
        md.AppendLine("request was admitted and recorded in Redis (a handful of warm-up requests may land in the count).");
        md.AppendLine();
        md.AppendLine("| scenario | gateway answers | 429s | other errors | answers with `x-ratelimit-*` headers | admitted in Redis per answer | recorded in Redis per answer | Redis scripts per answer | Redis µs per script | fell back to memory (5002) | back to Redis (5004) | 5002 during warm-up | `rate-limits` health at the end |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var on in limited)
        {
            var g = on.Gateway;
            if (on.Limiter is not { } l)
            {
                continue;
            }
            double PerAnswer(long count) => g.Requests > 0 ? (double)count / g.Requests : double.NaN;
            var perScript = l.RedisScriptCalls > 0 ? (double)l.RedisScriptMicroseconds / l.RedisScriptCalls : double.NaN;
            md.AppendLine($"| {on.Scenario.Name} | {g.Requests} | {g.Refused} | {g.Errors - g.Refused} | {g.RateLimitHeaders} " +
                $"| {F(PerAnswer(l.AdmittedInRedis), 2)} | {F(PerAnswer(l.RecordedInRedis), 2)} | {F(PerAnswer(l.RedisScriptCalls), 2)} | {F(perScript, 1)} " +
                $"| {l.FallbacksToMemory} | {l.BackToRedis} | {l.FallbacksDuringWarmUp} | {l.HealthAtEnd} |");
        }
        var twins = load.Where(r => !r.Scenario.Limits).ToList();
        if (twins.Count > 0)
        {
            md.AppendLine();
            md.AppendLine($"With limits off, {twins.Sum(r => r.Gateway.RateLimitHeaders)} of {twins.Sum(r => r.Gateway.Requests)} gateway answers carried `x-ratelimit-*` headers (0: the limiter was really off).");
        }
        md.AppendLine();
    }

    private static string WarmUp(WarmUpResult? warmUp) => warmUp is null ? ""
        : $"; measured after a warm-up of {warmUp.Duration.TotalSeconds:0} s ({(warmUp.Quiet ? "until no process's JIT compiled for more than 1 % of a round" : "**cut off at its cap with a JIT still compiling**")}; {(warmUp.GatewayJitTime is { } jit ? $"the gateway's JIT compiled for {jit.TotalSeconds:0.0} s of it" : "the gateway's JIT time not observable: no EventPipe")})";

    private static string Check(bool ok) => ok ? "met" : "**missed**";

    private static string F(double value, int decimals, bool signed = false) =>
        double.IsNaN(value) ? "n/a" : (signed && value >= 0 ? "+" : "") + value.ToString("F" + decimals, Invariant);

    private static string Git(string root, string arguments)
    {
        try
        {
            var start = new ProcessStartInfo("git", arguments) { WorkingDirectory = root, RedirectStandardOutput = true, RedirectStandardError = true };
            using var git = Process.Start(start)!;
            var output = git.StandardOutput.ReadToEnd().Trim();
            git.WaitForExit();
            return output;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "unknown";
        }
    }

    private static string CpuModel() =>
        File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU"
            : "unknown CPU";

    private static double MemoryGigabytes() => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 1073741824.0;
}
