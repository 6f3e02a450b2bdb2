namespace Onyx.Gateway.Health;

internal static class HealthExtensions
{
    /// <summary>
    /// The readiness rule (<see cref="Readiness"/>) and the deployments' state in <c>/health</c>. The deployments gate
    /// readiness: no deployment that could ever be called means this replica cannot serve. The shared-state checks
    /// (redis, replica, rate-limits, keys, breakers, audit) register beside their features and do not: each has a
    /// fallback that keeps the replica serving.
    /// </summary>
    public static IHostApplicationBuilder AddGatewayHealth(this IHostApplicationBuilder builder)
    {
        builder.Services.AddReadinessRule();
        builder.Services.AddHealthChecks().AddCheck<DeploymentsHealthCheck>("deployments", tags: [Readiness.ReadyTag]);
        return builder;
    }
}
