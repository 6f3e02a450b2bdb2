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

    /// <summary>
    /// Tag for checks that gate readiness: only they (and the liveness checks) can make <c>/health</c> answer 503.
    /// Every other check is at worst Degraded (200), whatever it returns or throws (see <see cref="AddDefaultHealthChecks"/>).
    /// </summary>
    public const string ReadyTag = "ready";

    /// <summary>Meters and activity sources of Onyx's own code, exported next to the framework's.</summary>
    public const string OnyxTelemetryPrefix = "Onyx.";

    /// <summary>The log category whose being enabled makes ASP.NET Core build a request Activity and log scope.</summary>
    public const string HostingDiagnosticsCategory = "Microsoft.AspNetCore.Hosting.Diagnostics";

    /// <summary>Tag combinations each framework metric keeps (<c>OpenTelemetry:Metrics:FrameworkCardinalityLimit</c>).</summary>
    public const int DefaultFrameworkCardinalityLimit = 200;

    /// <summary>
    /// Framework instruments not collected unless <c>OpenTelemetry:Metrics:Drop</c> says otherwise (comma-separated
    /// instrument names; a trailing <c>*</c> matches a prefix; empty collects everything). Each is recorded on every
    /// request, or on every buffer Kestrel rents, and tells an operator of a gateway nothing that the metrics kept do
    /// not: the route every request matches, how long the key check took, the connection pool's queue and idle
    /// states, the memory pool's rentals. A dropped instrument is switched off at its source, so it costs nothing.
    /// </summary>
    public const string DefaultDroppedMetrics =
        "aspnetcore.memory_pool.*,aspnetcore.routing.match_attempts,aspnetcore.authentication.authenticate.duration," +
        "aspnetcore.authorization.attempts,http.client.request.time_in_queue,http.client.open_connections";

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
        // Logs and traces go through OpenTelemetry only when something exports them (OTLP under Aspire, or
        // "OpenTelemetry:Traces"/"OpenTelemetry:Logs" = true for another exporter a project adds). Without an
        // exporter the pipelines would still build a log record and an Activity, with its tags, for every request
        // and every upstream call, only to drop them: a cost on the hot path that buys nothing. Metrics are always
        // collected (a project may scrape them itself).
        var otlp = OtlpConfigured(builder.Configuration);
        var logs = otlp || builder.Configuration.GetValue("OpenTelemetry:Logs", false);
        var traces = TracesExported(builder.Configuration);

        if (logs)
        {
            builder.Logging.AddOpenTelemetry(logging =>
            {
                logging.IncludeFormattedMessage = true;
                logging.IncludeScopes = true;
            });
        }

        // ASP.NET Core starts an Activity and opens a log scope (an AsyncLocal write) for every request whenever its
        // hosting logger is enabled at any level, so that log records can carry the request's trace and path. With no
        // log or trace exporter nothing reads either, so that category is switched off, unless the configuration sets
        // it. All it logs otherwise: request start and end lines (Information, below the usual "Microsoft.AspNetCore":
        // "Warning"), and startup errors only with CaptureStartupErrors, which a Kestrel app does not turn on. Under the
        // json-c16 benchmark it cut what the gateway allocates per request from about 15.4 to 14.5 KB.
        if (!logs && !traces && builder.Configuration[$"Logging:LogLevel:{HostingDiagnosticsCategory}"] is null)
        {
            builder.Logging.AddFilter(HostingDiagnosticsCategory, LogLevel.None);
        }

        // OpenTelemetry reserves room for every metric's whole cardinality limit up front (2 000 tag combinations by
        // default, 72 bytes each, plus a tag dictionary): the framework's 46 metric streams held 8.1 MB of the gateway's
        // 37 MB live heap with 1 000 idle connections (a heap dump under the slow-1000 benchmark). The framework's
        // metrics (ASP.NET Core, Kestrel, HttpClient, the runtime) have tags fixed by code (method, route, status,
        // protocol, GC generation…) and keep far fewer than that; Onyx's own keep the default, since their tags
        // grow with the configured aliases and deployments. Past the limit, new combinations are counted in one
        // series labelled otel.metric.overflow=true, so nothing is lost from the totals.
        var frameworkLimit = builder.Configuration.GetValue("OpenTelemetry:Metrics:FrameworkCardinalityLimit", DefaultFrameworkCardinalityLimit);
        if (frameworkLimit < 1)
        {
            throw new InvalidOperationException($"OpenTelemetry:Metrics:FrameworkCardinalityLimit must be at least 1 (it is {frameworkLimit}).");
        }
        var dropped = (builder.Configuration["OpenTelemetry:Metrics:Drop"] ?? DefaultDroppedMetrics)
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var telemetry = builder.Services.AddOpenTelemetry()
            .WithMetrics(metrics => metrics
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddRuntimeInstrumentation()
                .AddMeter(OnyxTelemetryPrefix + "*")
                .AddView(instrument => instrument.Meter.Name.StartsWith(OnyxTelemetryPrefix, StringComparison.Ordinal)
                    ? null
                    : Matches(dropped, instrument.Name)
                        ? MetricStreamConfiguration.Drop
                        : new MetricStreamConfiguration { CardinalityLimit = frameworkLimit }));
        if (traces)
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

        if (otlp)
        {
            telemetry.UseOtlpExporter();
        }
        return builder;
    }

    private static bool Matches(string[] patterns, string name)
    {
        foreach (var pattern in patterns)
        {
            if (pattern.EndsWith('*')
                ? name.StartsWith(pattern.AsSpan(0, pattern.Length - 1), StringComparison.Ordinal)
                : name.Equals(pattern, StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }

    public static TBuilder AddDefaultHealthChecks<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Services.AddHealthChecks()
            .AddCheck("self", () => HealthCheckResult.Healthy(), [LiveTag]);

        // Readiness means "can serve": a load balancer or orchestrator takes an instance out of rotation when /health
        // answers 503. A dependency the service has a fallback for (a shared cache, a library's own check of it) may
        // make it Degraded, never 503: otherwise one outage of that dependency takes every instance out at once,
        // while each could still answer. So only checks tagged "ready" or "live" keep their Unhealthy; every other
        // registration, whoever added it, is capped at Degraded, for what it returns, throws or times out on.
        builder.Services.PostConfigure<HealthCheckServiceOptions>(options =>
        {
            foreach (var registration in options.Registrations)
            {
                if (registration.Tags.Contains(ReadyTag) || registration.Tags.Contains(LiveTag))
                {
                    continue;
                }
                var factory = registration.Factory;
                registration.Factory = services => new AtMostDegraded(factory(services));
                registration.FailureStatus = HealthStatus.Degraded;
            }
        });
        return builder;
    }

    /// <summary>A check that does not gate readiness: its Unhealthy is reported as Degraded.</summary>
    private sealed class AtMostDegraded(IHealthCheck check) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            var result = await check.CheckHealthAsync(context, cancellationToken);
            return result.Status == HealthStatus.Unhealthy
                ? new HealthCheckResult(HealthStatus.Degraded, result.Description, result.Exception, result.Data)
                : result;
        }
    }

    /// <summary>
    /// Maps <c>/health</c> (readiness: every check; 503 only when a check tagged "ready" or "live" is Unhealthy) and
    /// <c>/alive</c> (liveness: only checks tagged "live").
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
