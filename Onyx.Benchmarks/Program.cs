using Onyx.Benchmarks;
using Onyx.Benchmarks.Reference;
using Onyx.Benchmarks.Upstream;

// dotnet run -c Release --project Onyx.Benchmarks -- [all|load|micro|chart] [--quick] [--seconds N] [--soak-minutes N] [--only NAME[,NAME...]]
// The fake upstream and the bare proxy run as child processes of this program; Main stays this small so that they
// load no more of it than they use.
return args switch
{
    [UpstreamProcess.Command] => await UpstreamProcess.RunAsync(),
    [BareProxyProcess.Command, var upstreamChat] => await BareProxyProcess.RunAsync(upstreamChat),
    ["chart"] => await BenchmarkRun.RedrawChartAsync(),
    _ => await BenchmarkRun.RunAsync(args),
};
