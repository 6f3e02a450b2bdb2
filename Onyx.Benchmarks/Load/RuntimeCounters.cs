using System.Diagnostics.Tracing;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing;

namespace Onyx.Benchmarks.Load;

/// <summary>
/// Reads another .NET process's runtime counters over EventPipe, as <c>dotnet-counters</c> does, without changing
/// that process: the GC heap size (for the soak) and the time its JIT compiler has spent (for the warm-up).
/// </summary>
internal sealed class RuntimeCounters : IDisposable
{
    private readonly EventPipeSession _session;
    private readonly Task _processing;
    private double _gcHeapMegabytes = double.NaN;
    private long _jitMicroseconds;

    private RuntimeCounters(EventPipeSession session)
    {
        _session = session;
        var source = new EventPipeEventSource(session.EventStream);
        source.Dynamic.All += OnEvent;
        _processing = Task.Run(() =>
        {
            try
            {
                source.Process();
            }
            catch (Exception)
            {
                // The session ends when the gateway exits or the session is stopped.
            }
        });
    }

    /// <summary>The latest "GC Heap Size" reading, in MB; NaN until the first arrives.</summary>
    public double GcHeapMegabytes => Volatile.Read(ref _gcHeapMegabytes);

    /// <summary>The time the process's JIT compiler has spent since this session started (all threads; one-second resolution).</summary>
    public TimeSpan JitTime => TimeSpan.FromMicroseconds(Interlocked.Read(ref _jitMicroseconds));

    /// <summary>
    /// Like <see cref="Start"/>, or null when the process offers no EventPipe (a Native AOT build without it, or
    /// diagnostics switched off): then there is no JIT to watch, or no way to watch it.
    /// </summary>
    public static RuntimeCounters? TryStart(int processId)
    {
        try
        {
            return Start(processId);
        }
        catch (DiagnosticsClientException)
        {
            return null;
        }
    }

    public static RuntimeCounters Start(int processId)
    {
        var provider = new EventPipeProvider("System.Runtime", EventLevel.Informational, 0,
            new Dictionary<string, string> { ["EventCounterIntervalSec"] = "1" });
        var session = new DiagnosticsClient(processId).StartEventPipeSession(provider, requestRundown: false);
        return new RuntimeCounters(session);
    }

    private void OnEvent(TraceEvent data)
    {
        if (data.EventName != "EventCounters" || data.PayloadValue(0) is not IDictionary<string, object> outer
            || outer.TryGetValue("Payload", out var inner) is false || inner is not IDictionary<string, object> payload)
        {
            return;
        }
        if (!payload.TryGetValue("Name", out var name))
        {
            return;
        }
        if ((string)name == "gc-heap-size" && payload.TryGetValue("Mean", out var mean))
        {
            Volatile.Write(ref _gcHeapMegabytes, Convert.ToDouble(mean, System.Globalization.CultureInfo.InvariantCulture));
        }
        else if ((string)name == "time-in-jit" && payload.TryGetValue("Increment", out var milliseconds))
        {
            // An incrementing counter: the milliseconds spent compiling during the last interval.
            Interlocked.Add(ref _jitMicroseconds, (long)(Convert.ToDouble(milliseconds, System.Globalization.CultureInfo.InvariantCulture) * 1000));
        }
    }

    public void Dispose()
    {
        try
        {
            _session.Stop();
        }
        catch (Exception)
        {
            // Already gone.
        }
        _processing.Wait(TimeSpan.FromSeconds(5));
        _session.Dispose();
    }
}
