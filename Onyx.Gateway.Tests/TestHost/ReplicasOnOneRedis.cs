namespace Onyx.Gateway.Tests.TestHost;

/// <summary>
/// A test class whose gateways act as replicas of one deployment: each started in this process on its own port,
/// all sharing one real redis-server, which a test may stop, restart on its port, or pause.
/// </summary>
public abstract class ReplicasOnOneRedis : IAsyncLifetime
{
    private readonly List<GatewayHost> _gateways = [];

    protected RedisServerProcess Redis { get; set; } = null!;

    /// <summary>Settings every replica of the class gets, under each test's own.</summary>
    protected abstract Dictionary<string, string?> ReplicaSettings { get; }

    /// <summary>
    /// <paramref name="settings"/> with Redis bounds no answer misses on a busy machine, for tests that need every
    /// decision made in Redis: past the admission or key-lookup bound (50 ms) a replica decides alone, and past the
    /// ping's (500 ms) it takes Redis for down.
    /// </summary>
    protected static Dictionary<string, string?> DecidedInRedis(Dictionary<string, string?> settings) => new(settings)
    {
        ["Onyx:RateLimits:RedisTimeout"] = "00:00:10",
        ["Onyx:Auth:RedisTimeout"] = "00:00:10",
        ["Onyx:Redis:PingTimeout"] = "00:00:10",
    };

    /// <summary>Where Redis persists its data (so it survives a kill and restart); none unless a class says so.</summary>
    protected virtual string? RedisDataDirectory => null;

    public async Task InitializeAsync() => Redis = await RedisServerProcess.StartAsync(TimeSpan.FromSeconds(20), dataDirectory: RedisDataDirectory);

    public async Task DisposeAsync()
    {
        foreach (var gateway in _gateways)
        {
            await gateway.DisposeAsync();
        }
        await Redis.DisposeAsync();
    }

    /// <summary>Starts one more replica on the shared Redis, with <paramref name="settings"/> over the class's.</summary>
    /// <param name="services">Replacements of the replica's services (e.g. a fake clock the replicas share).</param>
    protected async Task<GatewayHost> StartReplicaAsync(Dictionary<string, string?>? settings = null,
        Action<Microsoft.Extensions.DependencyInjection.IServiceCollection>? services = null)
    {
        var all = new Dictionary<string, string?>(ReplicaSettings) { ["ConnectionStrings:redis"] = Redis.ConnectionString };
        foreach (var (key, value) in settings ?? [])
        {
            all[key] = value;
        }
        var gateway = await GatewayHost.StartAsync(all, services);
        _gateways.Add(gateway);
        return gateway;
    }
}
