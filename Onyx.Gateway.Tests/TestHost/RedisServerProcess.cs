using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Onyx.Gateway.Tests.TestHost;

/// <summary>A real <c>redis-server</c> on a free loopback port, ready when <see cref="StartAsync"/> returns.</summary>
public sealed class RedisServerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private int _disposed;

    private RedisServerProcess(Process process, int port)
    {
        _process = process;
        Port = port;
    }

    public int Port { get; }

    public string ConnectionString => $"127.0.0.1:{Port}";

    /// <param name="port">A fixed port (to restart a stopped server where its clients expect it); a free one if not given.</param>
    /// <param name="dataDirectory">
    /// Persist every write there (append-only file, fsync'd per write), so a server killed and restarted on the same
    /// directory has what it had; no persistence if not given.
    /// </param>
    /// <param name="persistence">
    /// With <paramref name="dataDirectory"/>: these persistence arguments instead (the AppHost's, for a test of them).
    /// </param>
    /// <param name="password">Clients must authenticate with it (<c>requirepass</c>); none if not given.</param>
    public static async Task<RedisServerProcess> StartAsync(TimeSpan timeout, int? port = null, string? dataDirectory = null,
        IReadOnlyList<string>? persistence = null, string? password = null)
    {
        // A port found free can be taken by another test before redis-server binds it (redis-server cannot be told to
        // pick one itself): then it exits at start, and another free port is tried.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await StartOnceAsync(timeout, port ?? LoopbackPort.Free(), dataDirectory, persistence, password);
            }
            catch (RedisExitedAtStartException) when (port is null && attempt < 3)
            {
            }
        }
    }

    private sealed class RedisExitedAtStartException(int exitCode) : InvalidOperationException($"redis-server exited with {exitCode}.");

    private static async Task<RedisServerProcess> StartOnceAsync(TimeSpan timeout, int chosen, string? dataDirectory, IReadOnlyList<string>? persistence,
        string? password)
    {
        var start = new ProcessStartInfo("redis-server")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        IEnumerable<string> storage = dataDirectory is null ? ["--appendonly", "no"]
            : ["--dir", dataDirectory, .. persistence ?? ["--appendonly", "yes", "--appendfsync", "always"]];
        string[] auth = password is null ? [] : ["--requirepass", password];
        foreach (var arg in new[] { "--port", chosen.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "" }
            .Concat(storage).Concat(auth))
        {
            start.ArgumentList.Add(arg);
        }
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("redis-server did not start.");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException("The integration tests need redis-server on PATH (Debian: apt-get install redis-server); ./test.sh installs it.", ex);
        }

        // Ready when it says so on stdout: no polling, no sleeping.
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data?.Contains("Ready to accept connections", StringComparison.Ordinal) == true)
            {
                ready.TrySetResult();
            }
        };
        process.Exited += (_, _) => ready.TrySetException(new RedisExitedAtStartException(process.ExitCode));
        process.EnableRaisingEvents = true;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await ready.Task.WaitAsync(timeout);
        }
        catch
        {
            if (!process.HasExited)
            {
                process.Kill();
            }
            process.Dispose();
            throw;
        }
        return new RedisServerProcess(process, chosen);
    }

    /// <summary>
    /// Stops the server the way a service manager does (SIGTERM: Redis syncs its files and exits), and waits for it.
    /// </summary>
    public async Task ShutdownAsync(TimeSpan timeout)
    {
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync().WaitAsync(timeout);
        }
        await _process.WaitForExitAsync().WaitAsync(timeout);
        await DisposeAsync();
    }

    /// <summary>Stops the server (a test may stop it early, to see Redis go away); safe to call twice.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}
