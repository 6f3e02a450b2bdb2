using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Cross-cutting defaults every Onyx service gets: OpenTelemetry, health checks, service discovery and
/// HttpClient resilience. Shaped like the Aspire project templates' ServiceDefaults.
/// </summary>
public static class Extensions
{
    public const string HealthEndpointPath = "/health";
    public const string AlivenessEndpointPath = "/alive";

    /// <summary>Where a service serves its metrics in Prometheus format (if it does).</summary>
    public const string MetricsEndpointPath = "/metrics";

    /// <summary>Tag for checks that only say the process is alive (served at <c>/alive</c>).</summary>
    public const string LiveTag = "live";

    /// <summary>Meters and activity sources of Onyx's own code, exported next to the framework's.</summary>
    public const string OnyxTelemetryPrefix = "Onyx.";

    public static TBuilder AddServiceDefaults<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.ConfigureOpenTelemetry();
        builder.AddDefaultHealthChecks();
        builder.Services.AddServiceDiscovery();

        // The standard resilience handler (10 s per attempt, 30 s in all, retries) suits ordinary service calls.
        // It must never wrap LLM upstream calls: it would cut long streams and retry behind the gateway's own
        // fallback chain. The gateway therefore sends upstream traffic through its own long-lived HttpClients
        // (Onyx.Gateway/Providers/UpstreamClients.cs), which are not created by IHttpClientFactory and so never
        // receive these defaults.
        builder.Services.ConfigureHttpClientDefaults(http =>
        {
            http.AddStandardResilienceHandler();
            http.AddServiceDiscovery();
        });
        return builder;
    }

    /// <summary>Whether logs go through OpenTelemetry: an OTLP endpoint (Aspire sets one), or <c>OpenTelemetry:Logs</c> = true.</summary>
    public static bool LogsExported(IConfiguration configuration) =>
        OtlpConfigured(configuration) || configuration.GetValue("OpenTelemetry:Logs", false);

    /// <summary>
    /// Whether traces are built and exported: an OTLP endpoint (Aspire sets one), or <c>OpenTelemetry:Traces</c> = true.
    /// Without it, nothing would record a span, so code may skip what only tracing needs.
    /// </summary>
    public static bool TracesExported(IConfiguration configuration) =>
        OtlpConfigured(configuration) || configuration.GetValue("OpenTelemetry:Traces", false);

    private static bool OtlpConfigured(IConfiguration configuration) =>
        !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);

    public static TBuilder ConfigureOpenTelemetry<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        // Log and trace pipelines are built only when something exports them: otherwise each request and each outgoing
        // call would still build a log record and an Activity, only to drop them. Metrics are always collected.
        if (LogsExported(builder.Configuration))
        {
            builder.Logging.AddOpenTelemetry(logging =>
            {
                logging.IncludeFormattedMessage = true;
                logging.IncludeScopes = true;
            });
        }

        var telemetry = builder.Services.AddOpenTelemetry()
            .WithMetrics(metrics => metrics
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddRuntimeInstrumentation()
                .AddMeter(OnyxTelemetryPrefix + "*"));
        if (TracesExported(builder.Configuration))
        {
            telemetry.WithTracing(tracing => tracing
                .AddSource(builder.Environment.ApplicationName)
                .AddSource(OnyxTelemetryPrefix + "*")
                .AddAspNetCoreInstrumentation(aspnet =>
                    // Probes and scrapes are frequent and say nothing about traffic: keep them out of traces.
                    aspnet.Filter = context =>
                        !context.Request.Path.StartsWithSegments(HealthEndpointPath)
                        && !context.Request.Path.StartsWithSegments(AlivenessEndpointPath)
                        && !context.Request.Path.StartsWithSegments(MetricsEndpointPath))
                .AddHttpClientInstrumentation());
        }

        if (OtlpConfigured(builder.Configuration))
        {
            telemetry.UseOtlpExporter();
        }
        return builder;
    }

    public static TBuilder AddDefaultHealthChecks<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Services.AddHealthChecks()
            .AddCheck("self", () => HealthCheckResult.Healthy(), [LiveTag]);
        return builder;
    }

    /// <summary>
    /// Maps <c>/health</c> (readiness: every check) and <c>/alive</c> (liveness: only checks tagged "live").
    /// Mapped in every environment: a gateway's health endpoint is part of its API (load balancers,
    /// orchestrators and the Aspire dashboard probe it). The answers carry no secrets.
    /// </summary>
    public static WebApplication MapDefaultEndpoints(this WebApplication app)
    {
        app.MapHealthChecks(HealthEndpointPath, new HealthCheckOptions { ResponseWriter = WriteHealthJson });
        app.MapHealthChecks(AlivenessEndpointPath, new HealthCheckOptions
        {
            Predicate = check => check.Tags.Contains(LiveTag),
            ResponseWriter = WriteHealthJson,
        });
        return app;
    }

    private static Task WriteHealthJson(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("status", report.Status.ToString());
            json.WriteNumber("duration_ms", Math.Round(report.TotalDuration.TotalMilliseconds, 1));
            json.WriteStartObject("checks");
            foreach (var (name, entry) in report.Entries)
            {
                json.WriteStartObject(name);
                json.WriteString("status", entry.Status.ToString());
                if (entry.Description is { } description)
                {
                    json.WriteString("description", description);
                }
                if (entry.Data.Count > 0)
                {
                    json.WriteStartObject("data");
                    foreach (var (key, value) in entry.Data)
                    {
                        json.WriteString(key, Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture));
                    }
                    json.WriteEndObject();
                }
                json.WriteEndObject();
            }
            json.WriteEndObject();
            json.WriteEndObject();
        }
        return context.Response.Body.WriteAsync(buffer.ToArray()).AsTask();
    }
}
