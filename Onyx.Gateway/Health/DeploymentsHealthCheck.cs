using Microsoft.Extensions.Diagnostics.HealthChecks;
using Onyx.Gateway.Model;
using Onyx.Gateway.Resilience;

namespace Onyx.Gateway.Health;

/// <summary>
/// Each deployment's state: available and its breaker state, or why it cannot be called. Gates readiness: Unhealthy
/// (HTTP 503) only when no deployment can ever take traffic in this process (each unavailable: no key, its service
/// not running), since then the replica cannot answer any chat request. Degraded (still 200) when some are out, or when
/// every breaker is open: breakers close on their own after the cooldown, and meanwhile each request gets a clean
/// 503 with Retry-After, which is better for clients than a load balancer with no replica left to send them to.
/// </summary>
internal sealed class DeploymentsHealthCheck(RoutingTable routing, CircuitBreakerRegistry breakers) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var data = new Dictionary<string, object>(StringComparer.Ordinal);
        var degraded = false;
        var available = 0;
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
                available++;
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
        return Task.FromResult(
            available == 0 ? HealthCheckResult.Unhealthy("No deployment can take traffic: this replica cannot answer any chat request.", data: data)
            : degraded ? HealthCheckResult.Degraded("Some deployments cannot take traffic.", data: data)
            : HealthCheckResult.Healthy("Every deployment can take traffic.", data));
    }
}
