using Microsoft.Extensions.DependencyInjection.Extensions;
using Onyx.Gateway.Model;
using OpenTelemetry.Metrics;

namespace Onyx.Gateway.Telemetry;

internal static class TelemetryExtensions
{
    /// <summary>
    /// What every call leaves behind: the call log, the gateway's meter (exported by the service defaults' OTLP exporter
    /// and the Prometheus exporter behind <c>/metrics</c>) and Sentry when <c>SENTRY_DSN</c> is set; and the framework's
    /// own telemetry cut to what a gateway's operator reads (<see cref="FrameworkMetrics"/>, <see cref="HostingDiagnostics"/>).
    /// </summary>
    public static WebApplicationBuilder AddGatewayTelemetry(this WebApplicationBuilder builder)
    {
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<GatewayMetrics>();
        builder.Services.AddSingleton<FailureReporter>();
        builder.Services.AddSingleton<CallLogWriter>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<CallLogWriter>());
        builder.Services.AddSingleton<ICallObserver>(sp => sp.GetRequiredService<CallLogWriter>());
        builder.Services.AddSingleton<ICallObserver>(sp => sp.GetRequiredService<GatewayMetrics>());
        builder.Services.AddSingleton<ICallObserver>(sp => sp.GetRequiredService<FailureReporter>());
        // No response cache: a scrape shows every call made before it (the scrape itself is cheap).
        builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddPrometheusExporter(prometheus => prometheus.ScrapeResponseCacheDurationMilliseconds = 0));
        builder.AddFrameworkMetrics();
        builder.AddHostingDiagnosticsFilter();
        builder.WebHost.UseSentryIfConfigured(builder.Configuration);
        return builder;
    }
}
