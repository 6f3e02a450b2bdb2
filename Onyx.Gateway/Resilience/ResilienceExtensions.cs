namespace Onyx.Gateway.Resilience;

internal static class ResilienceExtensions
{
    public static IHostApplicationBuilder AddGatewayResilience(this IHostApplicationBuilder builder)
    {
        builder.Services.AddSingleton<CircuitBreakerRegistry>();
        return builder;
    }
}
