using Microsoft.Extensions.DependencyInjection;

namespace Onyx.AppHost.Redis;

/// <summary>Adds a local <c>redis-server</c> process to the application model.</summary>
internal static class RedisServerBuilderExtensions
{
    /// <summary>
    /// Adds <c>redis-server</c> listening on 127.0.0.1 on a port chosen at run time, keeping its data in an append-only
    /// file in <paramref name="dataDirectory"/> (no periodic RDB snapshots: the append-only file is the record), healthy
    /// once it answers PING. Run mode only: it is left out of the manifest.
    /// </summary>
    /// <param name="builder">The application builder.</param>
    /// <param name="name">The resource name, also the connection string name when referenced.</param>
    /// <param name="redisServerPath">The full path of the <c>redis-server</c> binary.</param>
    /// <param name="dataDirectory">Where its data lives, the same on every run (created if missing).</param>
    /// <param name="appendFsync">How often the append-only file is synced (<see cref="RedisPersistence.AppendFsync"/>).</param>
    public static IResourceBuilder<RedisServerResource> AddRedisServer(this IDistributedApplicationBuilder builder, [ResourceName] string name,
        string redisServerPath, string dataDirectory, string appendFsync)
    {
        ArgumentNullException.ThrowIfNull(builder);

        Directory.CreateDirectory(dataDirectory);
        var redis = new RedisServerResource(name, redisServerPath, dataDirectory);

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
                context.Args.Add("--dir");
                context.Args.Add(dataDirectory);
                context.Args.Add("--save");
                context.Args.Add(string.Empty);
                foreach (var argument in RedisPersistence.Arguments(appendFsync))
                {
                    context.Args.Add(argument);
                }
            })
            .WithHealthCheck(healthCheckKey)
            .WithIconName("Database")
            .ExcludeFromManifest();
    }
}
