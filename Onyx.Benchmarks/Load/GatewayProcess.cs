using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Onyx.Benchmarks.Load;

/// <summary>
/// The gateway as users run it: its Release build in a process of its own, so its CPU time and memory can be
/// read from <c>/proc</c> without the load generator's mixed in. Started either with its rate limits off (what
/// the gateway's hop costs) or with its features on: a master key, a generated API key and limits in Redis.
/// </summary>
internal sealed class GatewayProcess : IAsyncDisposable
{
    /// <summary>The generated key's limits: far above what two cores can send in a minute, so nothing is refused.</summary>
    public const int KeyRpmLimit = 1_000_000_000;

    /// <summary>The <c>user_id</c> of the benchmark's key: its counters are <c>onyx:rl:{bench}:…</c>.</summary>
    public const string BenchmarkUser = "bench";

    /// <summary>As high as the gateway accepts (<c>tpm_limit</c> is a 32-bit number).</summary>
    public const int KeyTpmLimit = 2_000_000_000;

    // The console logger's first line of an event names its category and id, e.g. "warn: …UsageLimiter[5002]".
    private const string RedisLostEvent = "UsageLimiter[5002]";
    private const string RedisBackEvent = "UsageLimiter[5004]";

    private readonly Process _process;
    private readonly string _configPath;
    private readonly string _auditDirectory;
    private int _redisLost;
    private int _redisBack;

    private GatewayProcess(Process process, Uri baseAddress, string configPath, string auditDirectory)
    {
        _process = process;
        BaseAddress = baseAddress;
        _configPath = configPath;
        _auditDirectory = auditDirectory;
    }

    public Uri BaseAddress { get; }

    /// <summary>The gateway build to run instead of this repository's Release build (<c>--gateway</c>), or null.</summary>
    public static string? Executable { get; set; }

    public int ProcessId => _process.Id;

    /// <summary>The key the load client sends as <c>Authorization: Bearer</c>; null for the open gateway.</summary>
    public string? ApiKey { get; private set; }

    /// <summary>The Redis that counts this gateway's limits (not owned: the caller stops it after the gateway).</summary>
    public RedisProcess? Redis { get; private set; }

    /// <summary>How often the gateway logged event 5002: Redis too slow or gone, so it limits in memory.</summary>
    public int RedisLostCount => Volatile.Read(ref _redisLost);

    /// <summary>How often it logged event 5004: Redis back, limits shared again.</summary>
    public int RedisBackCount => Volatile.Read(ref _redisBack);

    /// <summary>
    /// The gateway with its per-user rate limits switched off: open on loopback and nothing counted, so the scenarios
    /// measure the same hop they measured before the gateway had limits.
    /// </summary>
    public static Task<GatewayProcess> StartWithoutLimitsAsync(string repositoryRoot, Uri upstream) =>
        StartAsync(repositoryRoot, upstream, new Dictionary<string, string> { ["Onyx__RateLimits__Enabled"] = "false" });

    /// <summary>
    /// The gateway with its features on: a master key, so every request needs a key, and limits counted in
    /// <paramref name="redis"/>. The key the load sends comes from <c>/key/generate</c> (stored in Redis, like a
    /// user's), with limits so high that every request pays the whole check-and-count path without being refused.
    /// </summary>
    public static async Task<GatewayProcess> StartWithLimitsAsync(string repositoryRoot, Uri upstream, RedisProcess redis, HttpClient http)
    {
        var masterKey = "sk-bench-master-" + Guid.NewGuid().ToString("N");
        var gateway = await StartAsync(repositoryRoot, upstream, new Dictionary<string, string>
        {
            ["ConnectionStrings__redis"] = redis.ConnectionString,
            ["LITELLM_MASTER_KEY"] = masterKey,
            // 5004 (Redis back) is Information; the rest of the gateway stays at Warning.
            ["Logging__LogLevel__Onyx.Gateway.RateLimiting.UsageLimiter"] = "Information",
        });
        try
        {
            gateway.Redis = redis;
            gateway.ApiKey = await gateway.GenerateKeyAsync(http, masterKey);
            return gateway;
        }
        catch
        {
            await gateway.DisposeAsync();
            throw;
        }
    }

    private static async Task<GatewayProcess> StartAsync(string repositoryRoot, Uri upstream, IReadOnlyDictionary<string, string> extraEnvironment)
    {
        // Another build of the gateway (--gateway <executable>, e.g. a Native AOT publish) runs as it is; by default the
        // Release build of this repository runs on the shared runtime.
        var dll = Path.Combine(repositoryRoot, "Onyx.Gateway", "bin", "Release", "net10.0", "Onyx.Gateway.dll");
        var executable = Executable;
        if (executable is null && !File.Exists(dll))
        {
            throw new InvalidOperationException($"{dll} is missing: run the benchmark with 'dotnet run -c Release --project Onyx.Benchmarks', which builds it.");
        }
        if (executable is not null && !File.Exists(executable))
        {
            throw new InvalidOperationException($"--gateway {executable}: no such file.");
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

        var port = LoopbackPort.Free();
        var start = new ProcessStartInfo(executable ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(executable ?? dll)!,
        };
        if (executable is null)
        {
            start.ArgumentList.Add(dll);
        }
        start.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        start.Environment["LITELLM_CONFIG_PATH"] = config;
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        start.Environment["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information";
        start.Environment.Remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        start.Environment.Remove("LITELLM_MASTER_KEY");
        start.Environment.Remove("ConnectionStrings__redis");
        // Each gateway keeps its audit spill file (its whole audit trail, without Redis) in a directory of its own,
        // so no gateway replays another's records, and the run leaves nothing behind.
        var auditDirectory = Directory.CreateTempSubdirectory("onyx-bench-audit-").FullName;
        start.Environment["Onyx__Audit__SpillDirectory"] = auditDirectory;
        foreach (var (key, value) in extraEnvironment)
        {
            start.Environment[key] = value;
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("The gateway did not start.");
        var gateway = new GatewayProcess(process, new Uri($"http://127.0.0.1:{port}/"), config, auditDirectory);
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // The call log's JSON lines are read and dropped, as a log shipper would take them; the limiter's changes of
        // mode are counted.
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not { } line)
            {
                return;
            }
            if (line.Contains(RedisLostEvent, StringComparison.Ordinal))
            {
                Interlocked.Increment(ref gateway._redisLost);
            }
            else if (line.Contains(RedisBackEvent, StringComparison.Ordinal))
            {
                Interlocked.Increment(ref gateway._redisBack);
            }
            else if (line.Contains("Application started", StringComparison.Ordinal))
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
        try
        {
            await ready.Task.WaitAsync(TimeSpan.FromSeconds(60));
        }
        catch
        {
            await gateway.DisposeAsync();
            throw;
        }
        return gateway;
    }

    /// <summary>The <c>rate-limits</c> check of <c>GET /health</c>: its status and description.</summary>
    public async Task<string> ReadRateLimitHealthAsync(HttpClient http)
    {
        using var response = await http.GetAsync(new Uri(BaseAddress, "health"));
        using var json = JsonDocument.Parse(await response.Content.ReadAsStreamAsync());
        if (!json.RootElement.TryGetProperty("checks", out var checks) || !checks.TryGetProperty("rate-limits", out var check))
        {
            return $"no rate-limits check (HTTP {(int)response.StatusCode})";
        }
        var status = check.GetProperty("status").GetString();
        return check.TryGetProperty("description", out var description) ? $"{status}: {description.GetString()}" : status ?? "";
    }

    private async Task<string> GenerateKeyAsync(HttpClient http, string masterKey)
    {
        var body = string.Create(CultureInfo.InvariantCulture,
            $$"""{"user_id":"{{BenchmarkUser}}","key_alias":"onyx-benchmarks","rpm_limit":{{KeyRpmLimit}},"tpm_limit":{{KeyTpmLimit}}}""");
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(BaseAddress, "key/generate"))
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
            Headers = { Authorization = new AuthenticationHeaderValue("Bearer", masterKey) },
        };
        using var response = await http.SendAsync(request);
        var answer = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"POST /key/generate answered {(int)response.StatusCode}: {answer}");
        }
        using var json = JsonDocument.Parse(answer);
        return json.RootElement.GetProperty("key").GetString()
            ?? throw new InvalidOperationException("POST /key/generate answered without a key.");
    }

    public ProcessSample Sample() => ProcessSample.Read(_process.Id);

    /// <summary>Resets the kernel's peak-RSS mark, so the next <see cref="ProcessSample.PeakRssBytes"/> covers one scenario.</summary>
    public void ResetPeakRss() => ResetPeakRss(_process.Id);

    public static void ResetPeakRss(int processId)
    {
        try
        {
            File.WriteAllText($"/proc/{processId}/clear_refs", "5");
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
        Directory.Delete(_auditDirectory, recursive: true);
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
