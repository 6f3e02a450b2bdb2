using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Auth;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Model;
using OpenTelemetry.Metrics;

namespace Onyx.Gateway.Telemetry;

internal static class TelemetryExtensions
{
    /// <summary>
    /// The call log, the gateway's meter and spans (exported by the service defaults' OTLP exporter), the Prometheus
    /// exporter behind <c>/metrics</c>, and Sentry when <c>SENTRY_DSN</c> is set.
    /// </summary>
    public static WebApplicationBuilder AddGatewayTelemetry(this WebApplicationBuilder builder)
    {
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<GatewayMetrics>();
        builder.Services.AddSingleton<TokenEstimator>();
        builder.Services.AddSingleton<FailureReporter>();
        builder.Services.AddSingleton<CallLog>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<CallLog>());
        // No response cache: a scrape shows every call made before it (the scrape itself is cheap).
        builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddPrometheusExporter(prometheus => prometheus.ScrapeResponseCacheDurationMilliseconds = 0));
        builder.WebHost.UseSentryIfConfigured(builder.Configuration);
        return builder;
    }

    /// <summary>
    /// <c>GET /metrics</c> in Prometheus text format. By default only callers on this machine (a sidecar or node agent
    /// scraping it) or the master key may read it: what it shows is the gateway's traffic, and a scrape costs the
    /// process work. <c>Onyx:Metrics:Access</c> opens it (<c>open</c>) or closes it to all but the master key.
    /// </summary>
    public static WebApplication MapGatewayMetrics(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<IOptions<OnyxOptions>>().Value.Metrics;
        if (!options.Prometheus)
        {
            return app;
        }
        var endpoint = app.MapPrometheusScrapingEndpoint(Microsoft.Extensions.Hosting.Extensions.MetricsEndpointPath);
        switch (options.EffectiveAccess)
        {
            case MetricsAccess.MasterKey:
                endpoint.RequireAuthorization(AuthExtensions.AdminPolicy);
                break;
            case MetricsAccess.Loopback:
                endpoint.RequireAuthorization(AuthExtensions.LoopbackOrAdminPolicy);
                break;
        }
        return app;
    }
}
