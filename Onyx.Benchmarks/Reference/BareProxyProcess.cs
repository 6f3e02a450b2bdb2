using Onyx.Benchmarks.Load;

namespace Onyx.Benchmarks.Reference;

/// <summary>
/// <see cref="BareProxy"/> in a process of its own (this program, run as <c>proxy &lt;upstream&gt;</c>), with the
/// gateway's runtime settings (Server GC, concurrent GC), so its CPU time and memory compare with the gateway's.
/// </summary>
internal sealed class BareProxyProcess : IAsyncDisposable
{
    public const string Command = "proxy";

    private readonly ListeningChild _child;

    private BareProxyProcess(ListeningChild child) => _child = child;

    public Uri Root => _child.Root;

    public static async Task<BareProxyProcess> StartAsync(Uri upstreamRoot) =>
        new(await ListeningChild.StartAsync("bare proxy", [Command, new Uri(upstreamRoot, "v1/chat/completions").ToString()],
            // This program runs the workstation GC (for a steady load generator); the gateway runs ASP.NET Core's default.
            new Dictionary<string, string> { ["DOTNET_gcServer"] = "1", ["DOTNET_gcConcurrent"] = "1" }));

    /// <summary>Runs the bare proxy in this process until standard input closes (the parent went away).</summary>
    public static async Task<int> RunAsync(string upstreamChat)
    {
        await using var app = await BareProxy.StartAsync(new Uri(upstreamChat));
        await ListeningChild.ServeUntilParentLeavesAsync(BareProxy.Address(app));
        return 0;
    }

    public int ProcessId => _child.ProcessId;

    public ProcessSample Sample() => _child.Sample();

    /// <summary>Resets the kernel's peak-RSS mark, like <see cref="GatewayProcess.ResetPeakRss()"/>.</summary>
    public void ResetPeakRss() => GatewayProcess.ResetPeakRss(_child.ProcessId);

    public ValueTask DisposeAsync() => _child.DisposeAsync();
}
