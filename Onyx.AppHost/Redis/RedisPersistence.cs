using Microsoft.Extensions.Configuration;
using Onyx.AppHost.Configuration;

namespace Onyx.AppHost.Redis;

/// <summary>
/// Redis is the gateway's system of record (generated keys, spend, the audit trail), so every Redis the AppHost runs
/// keeps its writes in an append-only file synced to disk at least once a second: a restart loses nothing, a crash at
/// most the last second of writes (<c>Onyx:Redis:AppendFsync=always</c>: none, at the cost of one fsync per write).
/// </summary>
internal static class RedisPersistence
{
    public const string EverySecond = "everysec";
    public const string Always = "always";

    /// <summary>Where the Redis image keeps its data (Aspire's data volume is mounted there).</summary>
    public const string ContainerDataPath = "/data";

    /// <summary><c>Onyx:Redis:AppendFsync</c>: <c>everysec</c> unless set stricter.</summary>
    public static string AppendFsync(IConfiguration configuration)
    {
        var value = configuration[OnyxConfiguration.RedisAppendFsync];
        return value?.Trim().ToLowerInvariant() switch
        {
            null or "" or EverySecond => EverySecond,
            Always => Always,
            // "no" leaves syncing to the OS (~30 s of writes at risk): not durable enough for keys and spend.
            _ => throw new DistributedApplicationException(
                $"{OnyxConfiguration.RedisAppendFsync} must be '{EverySecond}' or '{Always}', not '{value}'."),
        };
    }

    /// <summary>The <c>redis-server</c> arguments that turn the append-only file on.</summary>
    public static IReadOnlyList<string> Arguments(string appendFsync) => ["--appendonly", "yes", "--appendfsync", appendFsync];

    /// <summary>
    /// A data volume at <c>/data</c> (Aspire's, which also takes an RDB snapshot every 60 s) and the append-only file
    /// on top, in run mode and in the published manifest alike.
    /// </summary>
    public static IResourceBuilder<RedisResource> WithAppendOnlyPersistence(this IResourceBuilder<RedisResource> redis, string appendFsync)
    {
        var arguments = Arguments(appendFsync);
        return redis.WithDataVolume().WithArgs(context =>
        {
            // Aspire's Redis starts `/bin/sh -c "redis-server …"` (the password comes from the environment): arguments
            // added after that string would reach the shell, not redis-server, so they go into it. Should a version
            // pass redis-server's arguments one by one instead, they are appended as such.
            var command = context.Args.ToList().FindIndex(a => a is string s && s.StartsWith("redis-server", StringComparison.Ordinal));
            if (command < 0)
            {
                throw new DistributedApplicationException(
                    $"The Redis container's arguments have an unexpected form; cannot turn on its append-only file: {string.Join(' ', context.Args)}");
            }
            if ((string)context.Args[command] == "redis-server")
            {
                foreach (var argument in arguments)
                {
                    context.Args.Add(argument);
                }
            }
            else
            {
                context.Args[command] = $"{context.Args[command]} {string.Join(' ', arguments)}";
            }
        });
    }
}
