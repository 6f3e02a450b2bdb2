using System.Diagnostics;
using System.Globalization;
using StackExchange.Redis;

namespace Onyx.Benchmarks.Load;

/// <summary>
/// A throwaway <c>redis-server</c> on a free loopback port, without persistence, for the scenarios that run the
/// gateway with its rate limits counted in Redis. Its own process, so its CPU time can be read like the gateway's.
/// </summary>
internal sealed class RedisProcess : IAsyncDisposable
{
    private const string Executable = "redis-server";
    private const string ReadyLine = "Ready to accept connections";

    private readonly Process _process;
    private ConnectionMultiplexer? _connection;

    private RedisProcess(Process process, int port)
    {
        _process = process;
        Port = port;
    }

    public int Port { get; }

    /// <summary>What the gateway's <c>ConnectionStrings:redis</c> gets.</summary>
    public string ConnectionString => $"127.0.0.1:{Port}";

    public static async Task<RedisProcess> StartAsync()
    {
        var port = LoopbackPort.Free();
        var start = new ProcessStartInfo(Executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no" })
        {
            start.ArgumentList.Add(argument);
        }

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("redis-server did not start.");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException($"The '-limits' scenarios need {Executable} on the PATH (apt-get install redis-server): {ex.Message}", ex);
        }
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data?.Contains(ReadyLine, StringComparison.Ordinal) == true)
            {
                ready.TrySetResult();
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (!string.IsNullOrEmpty(e.Data))
            {
                Console.Error.WriteLine("redis: " + e.Data);
            }
        };
        process.EnableRaisingEvents = true;
        process.Exited += (_, _) => ready.TrySetException(new InvalidOperationException($"{Executable} exited with {process.ExitCode}."));
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var redis = new RedisProcess(process, port);
        try
        {
            await ready.Task.WaitAsync(TimeSpan.FromSeconds(30));
            // The benchmark's own connection, to read INFO (an admin command to StackExchange.Redis).
            redis._connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString + ",allowAdmin=true").WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch
        {
            await redis.DisposeAsync();
            throw;
        }
        return redis;
    }

    public ProcessSample Sample() => ProcessSample.Read(_process.Id);

    /// <summary>
    /// How many Lua scripts Redis has run so far (<c>EVAL</c> and <c>EVALSHA</c>, from <c>INFO commandstats</c>), the
    /// microseconds it spent in them, and the Redis server's clock (ms), which times the limiter's entries.
    /// </summary>
    public async Task<ScriptStats> ScriptStatsAsync()
    {
        var server = _connection!.GetServer(_connection.GetEndPoints()[0]);
        long scripts = 0, microseconds = 0;
        foreach (var (command, stats) in (await server.InfoAsync("commandstats")).SelectMany(g => g))
        {
            if (command is not ("cmdstat_eval" or "cmdstat_evalsha"))
            {
                continue;
            }
            // e.g. "calls=1234,usec=5678,usec_per_call=4.60,…"
            var fields = stats.Split(',').Select(f => f.Split('=', 2)).Where(f => f.Length == 2).ToDictionary(f => f[0], f => f[1]);
            scripts += long.Parse(fields["calls"], CultureInfo.InvariantCulture);
            microseconds += long.Parse(fields["usec"], CultureInfo.InvariantCulture);
        }
        return new ScriptStats(scripts, microseconds, await ClockAsync(server));
    }

    /// <summary>
    /// The requests the limiter admitted in Redis for <paramref name="user"/> after <paramref name="since"/> (ms, Redis
    /// clock) and until now, and the finished calls it recorded there, read from the counters themselves: the entries
    /// timed in that span in the user's request and token sets (the benchmark's calls all have tokens). Good for a
    /// span shorter than the window (60 s): older entries are dropped.
    /// </summary>
    public async Task<(long Admitted, long Recorded, long Until)> CountedAsync(string user, long since)
    {
        var server = _connection!.GetServer(_connection.GetEndPoints()[0]);
        var until = await ClockAsync(server);
        var database = _connection.GetDatabase();
        var admitted = await database.SortedSetLengthAsync($"onyx:rl:{{{user}}}:req", since, until, Exclude.Start);
        var recorded = await database.SortedSetLengthAsync($"onyx:rl:{{{user}}}:tokens", since, until, Exclude.Start);
        return (admitted, recorded, until);
    }

    private static async Task<long> ClockAsync(IServer server) => new DateTimeOffset(DateTime.SpecifyKind(await server.TimeAsync(), DateTimeKind.Utc)).ToUnixTimeMilliseconds();

    public async ValueTask DisposeAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync();
        }
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}

/// <summary>Lua scripts Redis ran and the time it spent in them, at a time of its clock (ms).</summary>
internal readonly record struct ScriptStats(long Calls, long Microseconds, long ClockMs)
{
    public static ScriptStats operator -(ScriptStats after, ScriptStats before) =>
        new(after.Calls - before.Calls, after.Microseconds - before.Microseconds, after.ClockMs - before.ClockMs);
}
