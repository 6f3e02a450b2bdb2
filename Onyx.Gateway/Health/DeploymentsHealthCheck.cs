using Microsoft.Extensions.Diagnostics.HealthChecks;
using Onyx.Gateway.Resilience;
using Onyx.Gateway.Routing;

namespace Onyx.Gateway.Health;

/// <summary>
/// Each deployment's state: available and its breaker state, or why it cannot be called. Degraded (still HTTP 200)
/// when any deployment is out: the gateway itself is up and answers what it can.
/// </summary>
internal sealed class DeploymentsHealthCheck(RoutingTable routing, CircuitBreakerRegistry breakers) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var data = new Dictionary<string, object>(StringComparer.Ordinal);
        var degraded = false;
        foreach (var deployment in routing.Deployments)
        {
            string state;
            if (deployment.UnavailableReason is { } reason)
            {
                state = $"unavailable: {reason}";
                degraded = true;
            }
            else
            {
                var breaker = breakers.For(deployment);
                state = breaker.State switch
                {
                    CircuitState.Closed => "available (circuit closed)",
                    CircuitState.Open => $"circuit open until {breaker.OpenUntil:O}",
                    _ => "circuit half-open (probing)",
                };
                degraded |= breaker.State != CircuitState.Closed;
            }
            data[deployment.Id] = state;
        }
        return Task.FromResult(degraded
            ? HealthCheckResult.Degraded("Some deployments cannot take traffic.", data: data)
            : HealthCheckResult.Healthy("Every deployment can take traffic.", data));
    }
}
