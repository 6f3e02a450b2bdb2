using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;

namespace Onyx.Gateway.Health;

internal static class ShutdownExtensions
{
    /// <summary>
    /// Graceful shutdown: on SIGTERM <c>/health</c> turns 503, new requests get a 503, the requests in flight run on
    /// for up to <c>Onyx:Shutdown:DrainTimeout</c>, then the process exits.
    /// </summary>
    public static IHostApplicationBuilder AddGracefulShutdown(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        builder.AddOnyxOptions<ShutdownOptions>(ShutdownOptions.SectionName);
        services.AddSingleton<IValidateOptions<ShutdownOptions>, ShutdownOptionsValidator>();

        // The host gives the server the drain limit plus a grace to finish; past that Kestrel aborts what is left.
        services.AddOptions<HostOptions>().Configure<IOptions<ShutdownOptions>>((host, shutdown) =>
            host.ShutdownTimeout = shutdown.Value.DrainTimeout + GracefulShutdown.ExitGrace);

        services.AddSingleton<GracefulShutdown>();
        services.AddHostedService(provider => provider.GetRequiredService<GracefulShutdown>());
        services.AddHealthChecks().AddCheck<ShutdownHealthCheck>("shutdown", tags: [Readiness.ReadyTag]);

        // A startup filter rather than a Use… line in Program.cs: the drain must see every request before anything
        // else spends work on it (authentication, rate limits), and Program.cs keeps one line per capability.
        services.AddTransient<IStartupFilter, ShutdownDrainStartupFilter>();
        return builder;
    }
}
