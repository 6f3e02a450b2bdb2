namespace Onyx.Gateway.Resilience;

internal static class ResilienceExtensions
{
    public static IHostApplicationBuilder AddGatewayResilience(this IHostApplicationBuilder builder)
    {
        builder.Services.AddSingleton<CircuitBreakerRegistry>();
        builder.Services.AddSingleton<DeploymentSlots>();
        return builder;
    }
}
