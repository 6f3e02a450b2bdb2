using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Order;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;
using Perfolizer.Metrology;

namespace Onyx.Benchmarks.Micro;

/// <summary>
/// The gateway's hot path under BenchmarkDotNet: request parse and rewrite, OpenAI SSE pass-through, Ollama
/// NDJSON translation; time and bytes allocated per request or per chunk.
/// </summary>
public static class MicroBenchmarks
{
    private static readonly Type[] Benchmarks =
        [typeof(RequestRewriteBenchmarks), typeof(OpenAiStreamBenchmarks), typeof(OllamaStreamBenchmarks)];

    /// <summary>
    /// Runs every micro-benchmark (or those <c>--filter</c> picks) and writes one GitHub-markdown table per class to
    /// <c><paramref name="artifactsDirectory"/>/results/</c>.
    /// </summary>
    /// <param name="args">BenchmarkDotNet's own options (<c>--filter *Ollama*</c>, <c>--list flat</c>, <c>--job dry</c>…); none runs all.</param>
    /// <returns>0, or 1 when a benchmark failed or did not run.</returns>
    /// <remarks>
    /// In-process (<see cref="InProcessEmitToolchain"/>): no generated project to build and no child process per
    /// benchmark, so all of them run in about 80 s on two cores (the out-of-process toolchain spent 35 s building, and
    /// its child process was ended before reporting on this machine). Build and run in Release: BenchmarkDotNet
    /// refuses a non-optimized assembly.
    /// </remarks>
    public static int Run(string[] args, string artifactsDirectory)
    {
        var job = Job.Default
            .WithToolchain(InProcessEmitToolchain.Instance)
            .WithLaunchCount(1)
            .WithWarmupCount(4)
            .WithIterationCount(10)
            .WithIterationTime(TimeInterval.FromMilliseconds(400))
            .WithId("InProcess-Short");

        var config = ManualConfig.CreateEmpty()
            .AddJob(job)
            .AddDiagnoser(MemoryDiagnoser.Default)
            .AddColumnProvider(DefaultColumnProviders.Instance)
            .AddLogger(ConsoleLogger.Default)
            .AddExporter(MarkdownExporter.GitHub)
            .AddAnalyser(DefaultConfig.Instance.GetAnalysers().ToArray())
            .AddValidator(DefaultConfig.Instance.GetValidators().ToArray())
            // Bytes, not KB: the per-chunk figures are tens to hundreds of bytes and read best side by side.
            .WithSummaryStyle(SummaryStyle.Default.WithSizeUnit(SizeUnit.B))
            .WithOrderer(new DefaultOrderer(SummaryOrderPolicy.Declared))
            .WithArtifactsPath(artifactsDirectory)
            .WithOptions(ConfigOptions.DisableLogFile);

        // Without a filter, BenchmarkSwitcher would ask on the console which benchmark to run.
        if (!args.Any(a => a is "--filter" or "-f" || a.StartsWith("--filter=", StringComparison.Ordinal)))
        {
            args = [.. args, "--filter", "*"];
        }

        var summaries = BenchmarkSwitcher.FromTypes(Benchmarks).Run(args, config).ToArray();
        var failed = summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success));
        return failed ? 1 : 0;
    }
}
