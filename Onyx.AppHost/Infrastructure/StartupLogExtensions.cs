using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Onyx.AppHost.Infrastructure;

/// <summary>
/// The application model is decided before the AppHost has a logger; decisions worth an operator's eye are written
/// when it starts, through the AppHost's own logging (console, and the test host's logger under Aspire.Hosting.Testing).
/// </summary>
internal static class StartupLogExtensions
{
    private const string Category = "Onyx.AppHost";

    public static void LogOnStart(this IDistributedApplicationBuilder builder, Action<ILogger> write) =>
        builder.Eventing.Subscribe<BeforeStartEvent>((@event, _) =>
        {
            write(@event.Services.GetRequiredService<ILoggerFactory>().CreateLogger(Category));
            return Task.CompletedTask;
        });
}
