using System.Collections.Concurrent;
using System.Text.Json;
using StackExchange.Redis;

namespace Onyx.Gateway.Auth;

/// <summary>Where <c>/key/generate</c> keeps keys: Redis when the gateway has one (shared by every replica), else memory.</summary>
internal interface IKeyStore
{
    Task<ApiKeyRecord?> FindAsync(string hash, CancellationToken cancellationToken);

    Task SaveAsync(ApiKeyRecord record, CancellationToken cancellationToken);

    Task<bool> DeleteAsync(string hash, CancellationToken cancellationToken);

    /// <summary>Tells <paramref name="changed"/> the hash of every key another replica changes or deletes.</summary>
    Task SubscribeAsync(Action<string> changed);

    /// <summary>Adds US dollars to each key's running spend (by key hash).</summary>
    Task AddSpendAsync(IReadOnlyDictionary<string, decimal> costs, CancellationToken cancellationToken);

    /// <summary>A key's spend so far, in US dollars (0 for a key that has cost nothing).</summary>
    Task<decimal> GetSpendAsync(string hash, CancellationToken cancellationToken);
}

/// <summary>
/// One string per key, <c>onyx:key:&lt;sha256&gt;</c> → the record as JSON; changes are announced on
/// <see cref="Channel"/> so other replicas drop their cached copy at once.
/// </summary>
internal sealed class RedisKeyStore(IConnectionMultiplexer redis, TimeProvider time) : IKeyStore
{
    public const string KeyPrefix = "onyx:key:";

    /// <summary>A key's spend in US dollars, <c>onyx:spend:&lt;sha256&gt;</c>, kept apart from its record so replicas add to it atomically.</summary>
    public const string SpendPrefix = "onyx:spend:";
    public static readonly RedisChannel Channel = RedisChannel.Literal("onyx:keys:changed");

    /// <summary>An expired key's record stays this long, so its owner is told "expired" rather than "invalid".</summary>
    private static readonly TimeSpan ExpiredGrace = TimeSpan.FromDays(7);

    public async Task<ApiKeyRecord?> FindAsync(string hash, CancellationToken cancellationToken)
    {
        var value = await redis.GetDatabase().StringGetAsync(KeyPrefix + hash).WaitAsync(cancellationToken);
        return value.IsNullOrEmpty ? null : JsonSerializer.Deserialize((byte[])value!, AuthJsonContext.Default.ApiKeyRecord);
    }

    public async Task SaveAsync(ApiKeyRecord record, CancellationToken cancellationToken)
    {
        TimeSpan? keep = record.Expires is { } expires ? expires - time.GetUtcNow() + ExpiredGrace : null;
        var json = JsonSerializer.SerializeToUtf8Bytes(record, AuthJsonContext.Default.ApiKeyRecord);
        var database = redis.GetDatabase();
        await database.StringSetAsync(KeyPrefix + record.Hash, json, keep is { } ttl ? new Expiration(ttl) : Expiration.Default).WaitAsync(cancellationToken);
        await database.PublishAsync(Channel, record.Hash).WaitAsync(cancellationToken);
    }

    public async Task<bool> DeleteAsync(string hash, CancellationToken cancellationToken)
    {
        var database = redis.GetDatabase();
        var deleted = await database.KeyDeleteAsync(KeyPrefix + hash).WaitAsync(cancellationToken);
        await database.PublishAsync(Channel, hash).WaitAsync(cancellationToken);
        return deleted;
    }

    public Task SubscribeAsync(Action<string> changed) =>
        redis.GetSubscriber().SubscribeAsync(Channel, (_, hash) => changed(hash.ToString()));

    public async Task AddSpendAsync(IReadOnlyDictionary<string, decimal> costs, CancellationToken cancellationToken)
    {
        var batch = redis.GetDatabase().CreateBatch();
        var increments = costs.Select(c => batch.StringIncrementAsync(SpendPrefix + c.Key, (double)c.Value)).ToList();
        batch.Execute();
        await Task.WhenAll(increments).WaitAsync(cancellationToken);
    }

    public async Task<decimal> GetSpendAsync(string hash, CancellationToken cancellationToken)
    {
        var value = await redis.GetDatabase().StringGetAsync(SpendPrefix + hash).WaitAsync(cancellationToken);
        return value.IsNullOrEmpty ? 0 : Math.Round((decimal)(double)value, 8);
    }
}

/// <summary>Keys of a single gateway without Redis; they live as long as the process.</summary>
internal sealed class InMemoryKeyStore : IKeyStore
{
    private readonly ConcurrentDictionary<string, ApiKeyRecord> _keys = new(StringComparer.Ordinal);

    public Task<ApiKeyRecord?> FindAsync(string hash, CancellationToken cancellationToken) =>
        Task.FromResult(_keys.GetValueOrDefault(hash));

    public Task SaveAsync(ApiKeyRecord record, CancellationToken cancellationToken)
    {
        _keys[record.Hash] = record;
        return Task.CompletedTask;
    }

    public Task<bool> DeleteAsync(string hash, CancellationToken cancellationToken) => Task.FromResult(_keys.TryRemove(hash, out _));

    public Task SubscribeAsync(Action<string> changed) => Task.CompletedTask;

    private readonly ConcurrentDictionary<string, decimal> _spend = new(StringComparer.Ordinal);

    public Task AddSpendAsync(IReadOnlyDictionary<string, decimal> costs, CancellationToken cancellationToken)
    {
        foreach (var (hash, cost) in costs)
        {
            _spend.AddOrUpdate(hash, cost, (_, total) => total + cost);
        }
        return Task.CompletedTask;
    }

    public Task<decimal> GetSpendAsync(string hash, CancellationToken cancellationToken) => Task.FromResult(_spend.GetValueOrDefault(hash));
}
