using System.Diagnostics.Metrics;

namespace Onyx.Gateway.Audit;

/// <summary>The audit writer's own instruments (meter <see cref="MeterName"/>, exported with the other Onyx meters).</summary>
internal sealed class AuditMetrics : IDisposable
{
    public const string MeterName = "Onyx.Gateway.Audit";

    /// <summary>Destinations (<c>onyx.audit.destination</c>).</summary>
    public const string Redis = "redis", SpillFile = "spill_file", File = "file";

    /// <summary>Why records were dropped (<c>onyx.audit.reason</c>).</summary>
    public const string SpillFull = "spill_full", SpillUnwritable = "spill_unwritable", FileUnwritable = "file_unwritable";

    private readonly Meter _meter;
    private readonly Counter<long> _written;
    private readonly Counter<long> _replayed;
    private readonly Counter<long> _duplicates;
    private readonly Counter<long> _dropped;

    public AuditMetrics(IMeterFactory meters)
    {
        _meter = meters.Create(MeterName);
        _written = _meter.CreateCounter<long>("onyx.audit.records", "{record}",
            "Audit records written, by destination: redis, spill_file while Redis is unreachable, or file (standalone, no Redis).");
        _replayed = _meter.CreateCounter<long>("onyx.audit.replayed", "{record}", "Spilled audit records replayed into Redis.");
        _duplicates = _meter.CreateCounter<long>("onyx.audit.duplicates_skipped", "{record}",
            "Replayed audit records Redis already had (a write whose answer was lost), skipped.");
        _dropped = _meter.CreateCounter<long>("onyx.audit.dropped", "{record}",
            "Audit records lost, by reason: spill_full (the spill file at its bound), spill_unwritable or file_unwritable (the disk refused).");
    }

    public void Written(int count, string destination) =>
        _written.Add(count, new KeyValuePair<string, object?>("onyx.audit.destination", destination));

    public void Dropped(int count, string reason) =>
        _dropped.Add(count, new KeyValuePair<string, object?>("onyx.audit.reason", reason));

    public void Replayed(int count, int duplicates)
    {
        _replayed.Add(count);
        if (duplicates > 0)
        {
            _duplicates.Add(duplicates);
        }
    }

    /// <summary>Observes the writer's queue depth and the spill file's unreplayed bytes.</summary>
    public void Observe(Func<long> queueDepth, Func<long> spillBytes)
    {
        _meter.CreateObservableGauge("onyx.audit.queue.depth", queueDepth, "{record}", "Audit records waiting in memory for the writer.");
        _meter.CreateObservableGauge("onyx.audit.spill.bytes", spillBytes, "By", "Bytes of spilled audit records not yet replayed into Redis.");
    }

    public void Dispose() => _meter.Dispose();
}
