using System.Diagnostics;
using System.Globalization;

namespace Onyx.Benchmarks.Upstream;

/// <summary>
/// The fake upstream in a process of its own (this program, run as <c>upstream</c>), so that "direct" and
/// "through the gateway" cross the same process boundaries and differ only by the gateway's hop.
/// </summary>
internal sealed class UpstreamProcess : IAsyncDisposable
{
    public const string Command = "upstream";
    private const string ListeningPrefix = "listening on ";

    private readonly Process _process;

    private UpstreamProcess(Process process, Uri root)
    {
        _process = process;
        Root = root;
    }

    public Uri Root { get; }

    public static async Task<UpstreamProcess> StartAsync()
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!, Command)
        {
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        var process = Process.Start(start) ?? throw new InvalidOperationException("The fake upstream did not start.");
        var line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
        if (line is null || !line.StartsWith(ListeningPrefix, StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"The fake upstream said '{line}' instead of its address.");
        }
        return new UpstreamProcess(process, new Uri(line[ListeningPrefix.Length..]));
    }

    /// <summary>Runs the fake upstream in this process until standard input closes (the parent went away).</summary>
    public static async Task<int> RunAsync()
    {
        await using var upstream = await FastUpstream.StartAsync();
        Console.WriteLine(ListeningPrefix + upstream.Root);
        await Console.In.ReadToEndAsync();
        return 0;
    }

    public async Task SetPacingAsync(HttpClient http, int tokens, TimeSpan delay)
    {
        var uri = new Uri(Root, string.Create(CultureInfo.InvariantCulture, $"_bench/pacing?tokens={tokens}&delayMs={(int)delay.TotalMilliseconds}"));
        using var response = await http.PostAsync(uri, content: null);
        response.EnsureSuccessStatusCode();
    }

    public Load.ProcessSample Sample() => Load.ProcessSample.Read(_process.Id);

    public async ValueTask DisposeAsync()
    {
        _process.StandardInput.Close();
        if (!await WaitForExitAsync(TimeSpan.FromSeconds(5)))
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }

    private async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await _process.WaitForExitAsync().WaitAsync(timeout);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }
}
