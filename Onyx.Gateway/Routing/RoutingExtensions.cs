namespace Onyx.Gateway.Routing;

internal static class RoutingExtensions
{
    public static IHostApplicationBuilder AddModelRouting(this IHostApplicationBuilder builder)
    {
        builder.Services.AddSingleton<AttemptOpener>();
        builder.Services.AddSingleton<DeploymentLimits>();
        builder.Services.AddSingleton<AttemptLimits>();
        builder.Services.AddSingleton<FailurePolicy>();
        builder.Services.AddSingleton<Failover>();
        builder.Services.AddSingleton<Hedging>();
        builder.Services.AddSingleton<StreamResumer>();
        builder.Services.AddSingleton<ChatCompletionRouter>();
        return builder;
    }
}
