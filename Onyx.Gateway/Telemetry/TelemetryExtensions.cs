using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Onyx.Gateway.Telemetry;

internal static class TelemetryExtensions
{
    public static IHostApplicationBuilder AddGatewayTelemetry(this IHostApplicationBuilder builder)
    {
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<GatewayMetrics>();
        builder.Services.AddSingleton<TokenEstimator>();
        builder.Services.AddSingleton<CallLog>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<CallLog>());
        return builder;
    }
}
