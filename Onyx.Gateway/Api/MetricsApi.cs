using Microsoft.Extensions.Options;
using Onyx.Gateway.Auth;
using Onyx.Gateway.Configuration;

namespace Onyx.Gateway.Api;

internal static class MetricsApi
{
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
