using Microsoft.Extensions.Diagnostics.HealthChecks;
using ServiceDefaults = Microsoft.Extensions.Hosting.Extensions;

namespace Onyx.Gateway.Health;

/// <summary>
/// Readiness means "can serve": a load balancer or orchestrator takes a replica out of rotation when <c>/health</c>
/// answers 503. A dependency the gateway has a fallback for (the shared Redis, a library's own check of it) may make it
/// Degraded, never 503: otherwise one outage of that dependency takes every replica out at once, while each could
/// still answer. So only checks tagged <see cref="ReadyTag"/> or "live" keep their Unhealthy; every other registration,
/// whoever added it, is capped at Degraded, for what it returns, throws or times out on.
/// </summary>
internal static class Readiness
{
    /// <summary>Tag for checks that gate readiness: only they (and the liveness checks) can make <c>/health</c> answer 503.</summary>
    public const string ReadyTag = "ready";

    public static IServiceCollection AddReadinessRule(this IServiceCollection services)
    {
        services.PostConfigure<HealthCheckServiceOptions>(options =>
        {
            foreach (var registration in options.Registrations)
            {
                if (registration.Tags.Contains(ReadyTag) || registration.Tags.Contains(ServiceDefaults.LiveTag))
                {
                    continue;
                }
                var factory = registration.Factory;
                registration.Factory = services => new AtMostDegraded(factory(services));
                registration.FailureStatus = HealthStatus.Degraded;
            }
        });
        return services;
    }

    /// <summary>A check that does not gate readiness: its Unhealthy is reported as Degraded.</summary>
    private sealed class AtMostDegraded(IHealthCheck check) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            var result = await check.CheckHealthAsync(context, cancellationToken);
            return result.Status == HealthStatus.Unhealthy
                ? new HealthCheckResult(HealthStatus.Degraded, result.Description, result.Exception, result.Data)
                : result;
        }
    }
}
