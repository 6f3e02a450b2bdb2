using OpenTelemetry.Metrics;
using ServiceDefaults = Microsoft.Extensions.Hosting.Extensions;

namespace Onyx.Gateway.Telemetry;

/// <summary>
/// The framework's metrics (ASP.NET Core, Kestrel, HttpClient, the runtime) cut to what a gateway's operator reads:
/// instruments that say nothing the others do not are not collected (<see cref="DropKey"/>), and each of the rest keeps
/// at most <see cref="CardinalityLimitKey"/> tag combinations. Onyx's own metrics are left as they are.
/// </summary>
internal static class FrameworkMetrics
{
    /// <summary>Comma-separated instrument names not collected; a trailing <c>*</c> matches a prefix; empty collects everything.</summary>
    public const string DropKey = "OpenTelemetry:Metrics:Drop";

    /// <summary>Tag combinations each framework metric keeps.</summary>
    public const string CardinalityLimitKey = "OpenTelemetry:Metrics:FrameworkCardinalityLimit";

    public const int DefaultCardinalityLimit = 200;

    /// <summary>
    /// Framework instruments not collected unless <see cref="DropKey"/> says otherwise. Each is recorded on every request,
    /// or on every buffer Kestrel rents, and tells an operator of a gateway nothing that the metrics kept do not: the
    /// route every request matches, how long the key check took, the connection pool's queue and idle states, the memory
    /// pool's rentals. A dropped instrument is switched off at its source, so it costs nothing.
    /// </summary>
    public const string DefaultDropped =
        "aspnetcore.memory_pool.*,aspnetcore.routing.match_attempts,aspnetcore.authentication.authenticate.duration," +
        "aspnetcore.authorization.attempts,http.client.request.time_in_queue,http.client.open_connections";

    public static IHostApplicationBuilder AddFrameworkMetrics(this IHostApplicationBuilder builder)
    {
        // OpenTelemetry reserves memory for a metric's whole cardinality limit up front (2 000 tag combinations by
        // default). The framework's metrics have tags fixed by code (method, route, status, protocol, GC generation…)
        // and keep far fewer; Onyx's own keep the default, since their tags grow with the configured aliases and
        // deployments. Past the limit, new combinations are counted in one series labelled otel.metric.overflow=true,
        // so nothing is lost from the totals.
        var limit = builder.Configuration.GetValue(CardinalityLimitKey, DefaultCardinalityLimit);
        if (limit < 1)
        {
            throw new InvalidOperationException($"{CardinalityLimitKey} must be at least 1 (it is {limit}).");
        }
        var dropped = (builder.Configuration[DropKey] ?? DefaultDropped)
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddView(instrument =>
            instrument.Meter.Name.StartsWith(ServiceDefaults.OnyxTelemetryPrefix, StringComparison.Ordinal)
                ? null
                : Matches(dropped, instrument.Name)
                    ? MetricStreamConfiguration.Drop
                    : new MetricStreamConfiguration { CardinalityLimit = limit }));
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
}
