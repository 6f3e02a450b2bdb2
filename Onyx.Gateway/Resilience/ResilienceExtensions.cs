using Microsoft.Extensions.Diagnostics.HealthChecks;
using Onyx.Gateway.Cluster;

namespace Onyx.Gateway.Resilience;

internal static class ResilienceExtensions
{
    public static IHostApplicationBuilder AddGatewayResilience(this IHostApplicationBuilder builder)
    {
        builder.Services.AddSingleton<CircuitBreakerRegistry>();
        builder.Services.AddSingleton<DeploymentSlots>();
        if (ClusterExtensions.HasRedis(builder.Configuration))
        {
            // Cluster-wide breakers: the registry follows the other replicas once started.
            builder.Services.AddSingleton<RedisCircuitSync>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<CircuitBreakerRegistry>());
            // Does not gate readiness: without Redis each replica's breakers still work, alone.
            builder.Services.AddHealthChecks().Add(new HealthCheckRegistration("breakers",
                sp => sp.GetRequiredService<RedisCircuitSync>(), HealthStatus.Degraded, []));
        }
        return builder;
    }
}
