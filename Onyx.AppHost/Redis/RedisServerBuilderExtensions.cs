using Microsoft.Extensions.DependencyInjection;

namespace Onyx.AppHost.Redis;

/// <summary>Adds a local <c>redis-server</c> process to the application model.</summary>
internal static class RedisServerBuilderExtensions
{
    /// <summary>
    /// Adds <c>redis-server</c> listening on 127.0.0.1 on a port chosen at run time, in memory only (no RDB, no AOF),
    /// healthy once it answers PING. Run mode only: it is left out of the manifest.
    /// </summary>
    /// <param name="builder">The application builder.</param>
    /// <param name="name">The resource name, also the connection string name when referenced.</param>
    /// <param name="redisServerPath">The full path of the <c>redis-server</c> binary.</param>
    public static IResourceBuilder<RedisServerResource> AddRedisServer(this IDistributedApplicationBuilder builder, [ResourceName] string name, string redisServerPath)
    {
        ArgumentNullException.ThrowIfNull(builder);

        // Nothing is written with persistence off; the temp folder keeps a stray file out of the repository anyway.
        var redis = new RedisServerResource(name, redisServerPath, Path.GetTempPath());

        string? connectionString = null;
        builder.Eventing.Subscribe<ConnectionStringAvailableEvent>(redis, async (_, cancellationToken) =>
            connectionString = await redis.ConnectionStringExpression.GetValueAsync(cancellationToken).ConfigureAwait(false));

        var healthCheckKey = $"{name}_check";
        builder.Services.AddHealthChecks().AddRedis(
            _ => connectionString ?? throw new InvalidOperationException($"The connection string of '{name}' is not available yet."),
            name: healthCheckKey);

        return builder.AddResource(redis)
            .WithEndpoint(name: RedisServerResource.PrimaryEndpointName, scheme: "tcp")
            .WithArgs(context =>
            {
                context.Args.Add("--port");
                context.Args.Add(redis.PrimaryEndpoint.Property(EndpointProperty.TargetPort));
                context.Args.Add("--bind");
                context.Args.Add("127.0.0.1");
                context.Args.Add("--save");
                context.Args.Add(string.Empty);
                context.Args.Add("--appendonly");
                context.Args.Add("no");
            })
            .WithHealthCheck(healthCheckKey)
            .WithIconName("Database")
            .ExcludeFromManifest();
    }
}
