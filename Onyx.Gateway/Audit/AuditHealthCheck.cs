using Microsoft.Extensions.Diagnostics.HealthChecks;
using Onyx.Gateway.Cluster;

namespace Onyx.Gateway.Audit;

/// <summary>
/// Where audit records go now: the Redis stream, or this replica's spill file (Redis unreachable, or records spilled
/// earlier still waiting to be replayed). Never worse than Degraded: the spill file keeps every record.
/// </summary>
internal sealed class AuditHealthCheck(AuditWriter writer, RedisConnectionWatch watch) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var spilled = writer.SpilledBytes;
        var data = new Dictionary<string, object> { ["spilled_bytes"] = spilled };
        var result = watch.State is { Up: false } down
            ? HealthCheckResult.Degraded($"Redis is unreachable ({down.Reason}): records go to this replica's spill file and are replayed when it answers.", data: data)
            : spilled > 0
                ? HealthCheckResult.Degraded("Records spilled while Redis was unreachable wait in this replica's spill file to be replayed.", data: data)
                : HealthCheckResult.Healthy("Records go to the Redis stream.", data);
        return Task.FromResult(result);
    }
}
