using System.Diagnostics;
using Onyx.Benchmarks.Load;

namespace Onyx.Benchmarks.Reference;

/// <summary>
/// <see cref="BareProxy"/> in a process of its own (this program, run as <c>proxy &lt;upstream&gt;</c>), with the
/// gateway's runtime settings (Server GC, concurrent GC), so its CPU time and memory compare with the gateway's.
/// </summary>
internal sealed class BareProxyProcess : IAsyncDisposable
{
    public const string Command = "proxy";
    private const string ListeningPrefix = "listening on ";

    private readonly Process _process;

    private BareProxyProcess(Process process, Uri root)
    {
        _process = process;
        Root = root;
    }

    public Uri Root { get; }

    public static async Task<BareProxyProcess> StartAsync(Uri upstreamRoot)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!)
        {
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Command);
        start.ArgumentList.Add(new Uri(upstreamRoot, "v1/chat/completions").ToString());
        // This program runs the workstation GC (for a steady load generator); the gateway runs ASP.NET Core's default.
        start.Environment["DOTNET_gcServer"] = "1";
        start.Environment["DOTNET_gcConcurrent"] = "1";
        var process = Process.Start(start) ?? throw new InvalidOperationException("The bare proxy did not start.");
        var line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
        if (line is null || !line.StartsWith(ListeningPrefix, StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"The bare proxy said '{line}' instead of its address.");
        }
        return new BareProxyProcess(process, new Uri(line[ListeningPrefix.Length..]));
    }

    /// <summary>Runs the bare proxy in this process until standard input closes (the parent went away).</summary>
    public static async Task<int> RunAsync(string upstreamChat)
    {
        await using var app = await BareProxy.StartAsync(new Uri(upstreamChat));
        Console.WriteLine(ListeningPrefix + BareProxy.Address(app));
        await Console.In.ReadToEndAsync();
        return 0;
    }

    public ProcessSample Sample() => ProcessSample.Read(_process.Id);

    /// <summary>Resets the kernel's peak-RSS mark, like <see cref="GatewayProcess.ResetPeakRss"/>.</summary>
    public void ResetPeakRss() => GatewayProcess.ResetPeakRss(_process.Id);

    public async ValueTask DisposeAsync()
    {
        _process.StandardInput.Close();
        try
        {
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}
