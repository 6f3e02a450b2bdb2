using System.Diagnostics.Tracing;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing;
using Microsoft.Diagnostics.Tracing.Parsers;

namespace Onyx.Benchmarks.Load;

/// <summary>
/// What is really alive on another .NET process's managed heap: asks its runtime over EventPipe for a full,
/// blocking collection (the request <c>dotnet-gcdump</c> makes, without the heap walk) and reads the sizes the
/// collection leaves. Unlike the "GC heap size" counter, the reading holds no garbage waiting for the next
/// collection, so two readings differ only by what stayed alive in between.
/// </summary>
internal static class LiveHeap
{
    /// <summary>The heap after a forced full collection, every generation with large and pinned objects, in MB; NaN if none came in time.</summary>
    public static async Task<double> MeasureMegabytesAsync(int processId, TimeSpan timeout)
    {
        var provider = new EventPipeProvider("Microsoft-Windows-DotNETRuntime", EventLevel.Informational,
            (long)(ClrTraceEventParser.Keywords.GC | ClrTraceEventParser.Keywords.GCHeapCollect));
        using var session = new DiagnosticsClient(processId).StartEventPipeSession(provider, requestRundown: false);
        var source = new EventPipeEventSource(session.EventStream);
        var measured = new TaskCompletionSource<double>(TaskCreationOptions.RunContinuationsAsynchronously);
        var full = false;
        source.Clr.GCStart += e => full = e.Depth == 2;
        source.Clr.GCHeapStats += e =>
        {
            if (full)
            {
                var bytes = e.GenerationSize0 + e.GenerationSize1 + e.GenerationSize2 + e.GenerationSize3 + e.GenerationSize4;
                measured.TrySetResult(bytes / 1048576.0);
            }
        };
        var processing = Task.Run(() =>
        {
            try
            {
                source.Process();
            }
            catch (Exception)
            {
                // The session ends when it is stopped below or the process exits.
            }
        });
        try
        {
            return await measured.Task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            return double.NaN;
        }
        finally
        {
            try
            {
                session.Stop();
            }
            catch (Exception)
            {
                // Already gone.
            }
            await processing;
        }
    }
}
