using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Cluster;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Model;
using StackExchange.Redis;

namespace Onyx.Gateway.Audit;

internal static class AuditExtensions
{
    /// <summary>
    /// The audit trail: one record per LLM request, written off the hot path to a Redis stream (to this replica's
    /// spill file while Redis is unreachable; to a rotated local file without Redis), read back by <c>GET /audit</c>.
    /// </summary>
    public static IHostApplicationBuilder AddAuditTrail(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        var configuration = builder.Configuration;
        builder.AddOnyxOptions<AuditOptions>(AuditOptions.SectionName)
            .PostConfigure(options =>
            {
                // LiteLLM-style `general_settings: audit: include_content: true` in the config file, unless the Onyx
                // setting says otherwise.
                if (configuration[AuditOptions.SectionName + ":IncludeContent"] is null && configuration[AuditOptions.LiteLlmIncludeContentKey] is { } value)
                {
                    options.IncludeContent = bool.TryParse(value, out var include) ? include
                        : throw new OptionsValidationException(AuditOptions.LiteLlmIncludeContentKey, typeof(AuditOptions),
                            [$"{AuditOptions.LiteLlmIncludeContentKey} must be true or false; got '{value}'."]);
                }
                // The app's own data directory, not the machine's temp folder: spill files must outlive a reboot, and
                // must not meet another deployment's. Relative paths are under the content root (/app in the image).
                var root = builder.Environment.ContentRootPath;
                options.SpillDirectory = FullPath(options.SpillDirectory ?? Path.Combine("data", "audit"), root);
                options.File.Directory = options.File.Directory is null ? options.SpillDirectory : FullPath(options.File.Directory, root);
            });
        services.AddSingleton<IValidateOptions<AuditOptions>, AuditOptionsAnnotations>();
        services.AddSingleton<IValidateOptions<AuditOptions>, AuditOptionsValidator>();
        services.AddSingleton<AuditMetrics>();
        if (ClusterExtensions.HasRedis(configuration))
        {
            // Named from the client's own configuration: the Redis may come from ConnectionStrings or from the config file.
            services.AddSingleton(sp => AuditTrail.For(sp.GetRequiredService<IConnectionMultiplexer>().Configuration,
                sp.GetRequiredService<IOptions<AuditOptions>>().Value));
            services.AddSingleton(sp => new RedisAuditStream(sp.GetRequiredService<IConnectionMultiplexer>(),
                sp.GetRequiredService<IOptions<AuditOptions>>(), sp.GetRequiredService<TimeProvider>()));
            // Does not gate readiness: while Redis is unreachable the spill file keeps every record.
            services.AddSingleton<AuditHealthCheck>();
            services.AddHealthChecks().Add(new HealthCheckRegistration("audit",
                sp => sp.GetRequiredService<AuditHealthCheck>(), HealthStatus.Degraded, []));
        }
        services.AddSingleton<AuditWriter>();
        services.AddHostedService(sp => sp.GetRequiredService<AuditWriter>());
        services.AddSingleton<ICallObserver>(sp => sp.GetRequiredService<AuditWriter>());
        return builder;
    }

    /// <summary>An absolute path; an empty one is left for the validator to name.</summary>
    private static string FullPath(string path, string root) => string.IsNullOrWhiteSpace(path) ? path : Path.GetFullPath(path, root);
}
