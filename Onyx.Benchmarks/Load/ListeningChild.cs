using System.Diagnostics;

namespace Onyx.Benchmarks.Load;

/// <summary>
/// A child process of this program that serves HTTP on loopback (the fake upstream, the bare proxy): started with a
/// command, it prints <c>listening on &lt;address&gt;</c> and runs until its standard input closes, so it never
/// outlives the benchmark.
/// </summary>
internal sealed class ListeningChild : IAsyncDisposable
{
    private const string ListeningPrefix = "listening on ";

    private readonly Process _process;

    private ListeningChild(Process process, Uri root)
    {
        _process = process;
        Root = root;
    }

    public Uri Root { get; }

    public int ProcessId => _process.Id;

    /// <summary>In the child: says where it listens, then serves until the parent closes its standard input.</summary>
    public static async Task ServeUntilParentLeavesAsync(Uri address)
    {
        Console.WriteLine(ListeningPrefix + address);
        await Console.In.ReadToEndAsync();
    }

    /// <summary>Starts this program with <paramref name="arguments"/> and waits for the address it listens on.</summary>
    public static async Task<ListeningChild> StartAsync(string what, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!)
        {
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }
        var process = Process.Start(start) ?? throw new InvalidOperationException($"The {what} did not start.");
        var line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
        if (line is null || !line.StartsWith(ListeningPrefix, StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"The {what} said '{line}' instead of its address.");
        }
        return new ListeningChild(process, new Uri(line[ListeningPrefix.Length..]));
    }

    public ProcessSample Sample() => ProcessSample.Read(_process.Id);

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
