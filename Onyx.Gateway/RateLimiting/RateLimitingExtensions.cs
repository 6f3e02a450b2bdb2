using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Cluster;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Telemetry;
using StackExchange.Redis;

namespace Onyx.Gateway.RateLimiting;

internal static class RateLimitingExtensions
{
    /// <summary>Per-user limits, counted in Redis when the gateway has one (shared by all replicas), else in memory.</summary>
    public static IHostApplicationBuilder AddRateLimiting(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddSingleton<InMemoryUsageStore>();
        var redis = ClusterExtensions.HasRedis(builder.Configuration);
        if (redis)
        {
            services.AddSingleton(sp => new RedisUsageStore(sp.GetRequiredService<IConnectionMultiplexer>(), sp.GetRequiredService<IOptions<OnyxOptions>>()));
        }
        services.AddSingleton(sp => new UsageLimiter(
            sp.GetRequiredService<InMemoryUsageStore>(),
            sp.GetRequiredService<IOptions<OnyxOptions>>(),
            sp.GetRequiredService<IOptions<LiteLlmOptions>>(),
            sp.GetRequiredService<GatewayMetrics>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ReplicaIdentity>(),
            sp.GetRequiredService<ILogger<UsageLimiter>>(),
            redis ? sp.GetRequiredService<RedisUsageStore>() : null,
            redis ? sp.GetRequiredService<RedisConnectionWatch>() : null));
        // Does not gate readiness: in memory (or fail-closed, with a clean 503) the replica still answers.
        services.AddHealthChecks().Add(new HealthCheckRegistration("rate-limits",
            sp => sp.GetRequiredService<UsageLimiter>(), HealthStatus.Degraded, []));
        return builder;
    }
}
