using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Onyx.Benchmarks.Load;

/// <summary>
/// The gateway as users run it: its Release build in a process of its own, so its CPU time and memory can be
/// read from <c>/proc</c> without the load generator's mixed in.
/// </summary>
internal sealed class GatewayProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _configPath;

    private GatewayProcess(Process process, Uri baseAddress, string configPath)
    {
        _process = process;
        BaseAddress = baseAddress;
        _configPath = configPath;
    }

    public Uri BaseAddress { get; }

    public int ProcessId => _process.Id;

    public static async Task<GatewayProcess> StartAsync(string repositoryRoot, Uri upstream, IReadOnlyDictionary<string, string> extraEnvironment)
    {
        var dll = Path.Combine(repositoryRoot, "Onyx.Gateway", "bin", "Release", "net10.0", "Onyx.Gateway.dll");
        if (!File.Exists(dll))
        {
            throw new InvalidOperationException($"{dll} is missing: run the benchmark with 'dotnet run -c Release --project Onyx.Benchmarks', which builds it.");
        }
        var config = Path.Combine(Path.GetTempPath(), $"onyx-bench-{Guid.NewGuid():N}.yaml");
        var openAiBase = new Uri(upstream, "v1");
        await File.WriteAllTextAsync(config, $"""
            model_list:
              - model_name: bench-openai
                litellm_params: {"{"} model: "openai/{Upstream.FastUpstream.Model}", api_base: "{openAiBase}", api_key: "bench-key" {"}"}
              - model_name: bench-ollama
                litellm_params: {"{"} model: "ollama/{Upstream.FastUpstream.Model}", api_base: "{upstream}" {"}"}
            """);

        var port = FreePort();
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        start.ArgumentList.Add(dll);
        start.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        start.Environment["LITELLM_CONFIG_PATH"] = config;
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        start.Environment["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information";
        start.Environment.Remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        foreach (var (key, value) in extraEnvironment)
        {
            start.Environment[key] = value;
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("The gateway did not start.");
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // The call log's JSON lines are read and dropped, as a log shipper would take them.
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data?.Contains("Application started", StringComparison.Ordinal) == true)
            {
                ready.TrySetResult();
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (!string.IsNullOrEmpty(e.Data))
            {
                Console.Error.WriteLine("gateway: " + e.Data);
            }
        };
        process.EnableRaisingEvents = true;
        process.Exited += (_, _) => ready.TrySetException(new InvalidOperationException($"The gateway exited with {process.ExitCode}."));
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await ready.Task.WaitAsync(TimeSpan.FromSeconds(60));
        return new GatewayProcess(process, new Uri($"http://127.0.0.1:{port}/"), config);
    }

    public ProcessSample Sample() => ProcessSample.Read(_process.Id);

    /// <summary>Resets the kernel's peak-RSS mark, so the next <see cref="ProcessSample.PeakRssBytes"/> covers one scenario.</summary>
    public void ResetPeakRss()
    {
        try
        {
            File.WriteAllText($"/proc/{_process.Id}/clear_refs", "5");
        }
        catch (IOException)
        {
            // Not permitted here: peaks then cover the process lifetime, which the report says.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
        File.Delete(_configPath);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>CPU time and memory of a process, from <c>/proc/&lt;pid&gt;/stat</c> and <c>status</c>.</summary>
/// <remarks>RSS splits into anonymous memory (heaps, stacks), file-backed pages (the runtime and assemblies,
/// shared with other .NET processes) and shared memory (the JIT's double-mapped code).</remarks>
internal readonly record struct ProcessSample(TimeSpan CpuTime, long RssBytes, long PeakRssBytes, long AnonBytes = 0, long FileBytes = 0, long ShmemBytes = 0)
{
    private static readonly double TicksPerSecond = 100; // USER_HZ on Linux

    public static ProcessSample Read(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // Fields after the command: state is index 0, so utime (14) and stime (15) are 11 and 12.
        var ticks = long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture);
        long rss = 0, peak = 0, anon = 0, file = 0, shmem = 0;
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                rss = Kilobytes(line) * 1024;
            }
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                peak = Kilobytes(line) * 1024;
            }
            else if (line.StartsWith("RssAnon:", StringComparison.Ordinal))
            {
                anon = Kilobytes(line) * 1024;
            }
            else if (line.StartsWith("RssFile:", StringComparison.Ordinal))
            {
                file = Kilobytes(line) * 1024;
            }
            else if (line.StartsWith("RssShmem:", StringComparison.Ordinal))
            {
                shmem = Kilobytes(line) * 1024;
            }
        }
        return new ProcessSample(TimeSpan.FromSeconds(ticks / TicksPerSecond), rss, peak, anon, file, shmem);
    }

    private static long Kilobytes(string line) =>
        long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
}
