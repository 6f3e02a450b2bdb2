using Microsoft.Extensions.Diagnostics.HealthChecks;
using StackExchange.Redis;

namespace Onyx.Gateway.Cluster;

/// <summary>
/// Registers this replica in the shared Redis (hash <see cref="Key"/>: replica id → start time), so operators
/// and tests can see every replica shares one Redis; the shared state of later features lives beside it.
/// </summary>
internal sealed partial class ReplicaRegistry(IConnectionMultiplexer redis, ReplicaIdentity identity, TimeProvider time, ILogger<ReplicaRegistry> logger)
    : IHostedService, IHealthCheck
{
    public const string Key = "onyx:replicas";

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await redis.GetDatabase().HashSetAsync(Key, identity.Id, time.GetUtcNow().ToString("O"));
            Log.Registered(logger, identity.Id);
        }
        catch (RedisException ex)
        {
            // Redis may come later; health reports it, and the next health check registers again.
            Log.RegistrationFailed(logger, identity.Id, ex.Message);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        try
        {
            await redis.GetDatabase().HashDeleteAsync(Key, identity.Id);
        }
        catch (Exception ex) when (ex is RedisException or ObjectDisposedException)
        {
            // Shutting down (the connection may already be closed): nothing more to do.
        }
    }

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var data = new Dictionary<string, object> { ["replica"] = identity.Id };
        try
        {
            var database = redis.GetDatabase();
            await database.HashSetAsync(Key, identity.Id, time.GetUtcNow().ToString("O"), When.NotExists);
            data["replicas"] = await database.HashLengthAsync(Key);
            return HealthCheckResult.Healthy("Registered in Redis.", data);
        }
        catch (RedisException ex)
        {
            return HealthCheckResult.Unhealthy("Redis is unreachable.", ex, data);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(4001, LogLevel.Information, "Replica {Replica} registered in Redis")]
        public static partial void Registered(ILogger logger, string replica);

        [LoggerMessage(4002, LogLevel.Warning, "Replica {Replica} could not register in Redis: {Error}")]
        public static partial void RegistrationFailed(ILogger logger, string replica, string error);
    }
}
