using ServiceDefaults = Microsoft.Extensions.Hosting.Extensions;

namespace Onyx.Gateway.Telemetry;

/// <summary>
/// ASP.NET Core starts an Activity and opens a log scope (an AsyncLocal write) for every request whenever its hosting
/// logger is enabled at any level, so that log records can carry the request's trace and path. With no log or trace
/// exporter nothing reads either, so that logger is switched off, unless the configuration sets its level. All it logs
/// otherwise: request start and end lines (Information, below the usual <c>"Microsoft.AspNetCore": "Warning"</c>), and
/// startup errors only with <c>CaptureStartupErrors</c>, which a Kestrel app does not turn on.
/// </summary>
internal static class HostingDiagnostics
{
    /// <summary>The log category whose being enabled makes ASP.NET Core build a request Activity and log scope.</summary>
    public const string Category = "Microsoft.AspNetCore.Hosting.Diagnostics";

    public static IHostApplicationBuilder AddHostingDiagnosticsFilter(this IHostApplicationBuilder builder)
    {
        var configuration = builder.Configuration;
        if (!ServiceDefaults.LogsExported(configuration) && !ServiceDefaults.TracesExported(configuration)
            && configuration[$"Logging:LogLevel:{Category}"] is null)
        {
            builder.Logging.AddFilter(Category, LogLevel.None);
        }
        return builder;
    }
}
