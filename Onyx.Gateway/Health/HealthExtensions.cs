namespace Onyx.Gateway.Health;

internal static class HealthExtensions
{
    /// <summary>
    /// The deployments' state in <c>/health</c>. It gates readiness (tag "ready"): no deployment that could ever be
    /// called means this replica cannot serve. The shared-state checks (redis, replica, rate-limits, keys, breakers,
    /// audit) register beside their features and do not: each has a fallback that keeps the replica serving.
    /// </summary>
    public static IHostApplicationBuilder AddGatewayHealth(this IHostApplicationBuilder builder)
    {
        builder.Services.AddHealthChecks().AddCheck<DeploymentsHealthCheck>("deployments", tags: [Extensions.ReadyTag]);
        return builder;
    }
}
