namespace Onyx.Gateway.Health;

internal static class HealthExtensions
{
    public static IHostApplicationBuilder AddGatewayHealth(this IHostApplicationBuilder builder)
    {
        builder.Services.AddHealthChecks().AddCheck<DeploymentsHealthCheck>("deployments");
        return builder;
    }
}
