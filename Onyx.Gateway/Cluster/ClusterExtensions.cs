using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;
using StackExchange.Redis;

namespace Onyx.Gateway.Cluster;

internal static partial class ClusterExtensions
{
    /// <summary>The Aspire connection name of the shared Redis (<c>ConnectionStrings:redis</c>).</summary>
    public const string RedisConnectionName = "redis";

    /// <summary>
    /// Shared state across replicas lives in Redis, through Aspire's StackExchange.Redis client (health check,
    /// traces, metrics included): the one Aspire names (<c>ConnectionStrings:redis</c>), else the one the LiteLLM config
    /// names (<c>router_settings.redis_host</c>, …). Without either the gateway runs on in-memory state, which is right
    /// for one standalone process and says so at start-up.
    /// </summary>
    public static bool HasRedis(IConfiguration configuration) => HasAspireRedis(configuration) || LiteLlmRedis.Read(configuration, out _) is not null;

    private static bool HasAspireRedis(IConfiguration configuration) =>
        !string.IsNullOrWhiteSpace(configuration.GetConnectionString(RedisConnectionName));

    public static IHostApplicationBuilder AddCluster(this IHostApplicationBuilder builder)
    {
        builder.Services.AddSingleton<ReplicaIdentity>();
        // Bound with or without Redis: its keys are the gateway's either way, and checked either way.
        builder.AddOnyxOptions<RedisWatchOptions>(RedisWatchOptions.SectionName);
        builder.Services.AddSingleton<IValidateOptions<RedisWatchOptions>, RedisWatchOptionsValidator>();
        if (HasRedis(builder.Configuration))
        {
            // Aspire's connection string wins: under the AppHost it is the Redis the replicas were started with.
            var fromFile = HasAspireRedis(builder.Configuration) ? null : LiteLlmRedis.Read(builder.Configuration, out _);
            // Fail fast while disconnected instead of queueing commands until the connection returns: callers
            // (the rate limiter, the key store) bound their waits and fall back, and must hear about it at once.
            // Aspire's own Redis health check is off: it turns /health Unhealthy (503) when Redis is down, which would
            // take every replica out of rotation while each still serves on its fallbacks. The watch reports Redis
            // instead, as Degraded with the reason.
            builder.AddRedisClient(RedisConnectionName, configureSettings: settings =>
            {
                settings.DisableHealthChecks = true;
                if (fromFile is not null)
                {
                    // The endpoint alone: the password goes into the options below, never into a string.
                    settings.ConnectionString = fromFile.EndPoint;
                }
            }, configureOptions: options =>
            {
                if (fromFile is not null)
                {
                    options.User = fromFile.User;
                    options.Password = fromFile.Password;
                    options.Ssl = fromFile.Ssl;
                    options.DefaultDatabase = fromFile.Database;
                }
                options.AbortOnConnectFail = false;
                options.BacklogPolicy = BacklogPolicy.FailFast;
                // Redis replies complete on .NET's thread pool, not on the client's own dedicated worker threads,
                // whose spinning and hand-overs a small machine's cores cannot spare (docs/design-notes.md).
                options.SocketManager = SocketManager.ThreadPool;
            });
            // Registered before the features that follow it: its start-up line (Redis there or not) comes first.
            builder.Services.AddSingleton<RedisConnectionWatch>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<RedisConnectionWatch>());
            builder.Services.AddSingleton<ReplicaRegistry>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<ReplicaRegistry>());
            // Neither gates readiness (see README "Health"): without Redis each replica still serves, on its fallbacks.
            builder.Services.AddHealthChecks()
                .Add(new HealthCheckRegistration("redis", sp => sp.GetRequiredService<RedisConnectionWatch>(), HealthStatus.Degraded, []))
                .Add(new HealthCheckRegistration("replica", sp => sp.GetRequiredService<ReplicaRegistry>(), HealthStatus.Degraded, []));
        }
        else
        {
            builder.Services.AddHostedService<InMemoryNotice>();
        }
        return builder;
    }

    private sealed partial class InMemoryNotice(ILogger<InMemoryNotice> logger) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            NoRedis(logger);
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        [LoggerMessage(4003, LogLevel.Warning, "No Redis configured (ConnectionStrings:redis): state is in memory, which is correct for a single replica only")]
        private static partial void NoRedis(ILogger logger);
    }
}
