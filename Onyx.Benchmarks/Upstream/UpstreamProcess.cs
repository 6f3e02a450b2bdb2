using System.Globalization;
using Onyx.Benchmarks.Load;

namespace Onyx.Benchmarks.Upstream;

/// <summary>
/// The fake upstream in a process of its own (this program, run as <c>upstream</c>), so that "direct" and
/// "through the gateway" cross the same process boundaries and differ only by the gateway's hop.
/// </summary>
internal sealed class UpstreamProcess : IAsyncDisposable
{
    public const string Command = "upstream";

    private readonly ListeningChild _child;

    private UpstreamProcess(ListeningChild child) => _child = child;

    public Uri Root => _child.Root;

    public static async Task<UpstreamProcess> StartAsync() =>
        new(await ListeningChild.StartAsync("fake upstream", [Command]));

    /// <summary>Runs the fake upstream in this process until standard input closes (the parent went away).</summary>
    public static async Task<int> RunAsync()
    {
        await using var upstream = await FastUpstream.StartAsync();
        await ListeningChild.ServeUntilParentLeavesAsync(upstream.Root);
        return 0;
    }

    public async Task SetPacingAsync(HttpClient http, int tokens, TimeSpan delay)
    {
        var uri = new Uri(Root, string.Create(CultureInfo.InvariantCulture, $"_bench/pacing?tokens={tokens}&delayMs={(int)delay.TotalMilliseconds}"));
        using var response = await http.PostAsync(uri, content: null);
        response.EnsureSuccessStatusCode();
    }

    public int ProcessId => _child.ProcessId;

    public ProcessSample Sample() => _child.Sample();

    public ValueTask DisposeAsync() => _child.DisposeAsync();
}
