using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Onyx.Gateway.Health;

/// <summary>
/// Readiness: Unhealthy from SIGTERM on, so <c>/health</c> answers 503 and load balancers and the Aspire dashboard
/// stop sending traffic while the requests in flight finish. Not tagged "live": <c>/alive</c> stays 200 until exit.
/// </summary>
internal sealed class ShutdownHealthCheck(GracefulShutdown shutdown) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(shutdown.IsDraining
            ? HealthCheckResult.Unhealthy("Draining: the gateway is shutting down and takes no new requests.",
                data: new Dictionary<string, object> { ["in_flight"] = shutdown.InFlight })
            : HealthCheckResult.Healthy("Taking new requests."));
}
