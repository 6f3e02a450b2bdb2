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

    /// <summary>Every generated key's record.</summary>
    Task<IReadOnlyList<ApiKeyRecord>> ListAsync(CancellationToken cancellationToken);
}

/// <summary>
/// One string per key, <c>onyx:key:&lt;sha256&gt;</c> → the record as JSON; changes are announced on
/// <see cref="Channel"/> so other replicas drop their cached copy at once.
/// </summary>
internal sealed class RedisKeyStore(IConnectionMultiplexer redis, TimeProvider time) : IKeyStore
{
    public const string KeyPrefix = "onyx:key:";
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

    /// <summary>
    /// SCAN over every primary for <c>onyx:key:*</c>: an operator's occasional listing, walked in steps that never hold
    /// Redis up, and it finds every key whichever version stored it.
    /// </summary>
    public async Task<IReadOnlyList<ApiKeyRecord>> ListAsync(CancellationToken cancellationToken)
    {
        var names = new List<RedisKey>();
        foreach (var endpoint in redis.GetEndPoints())
        {
            var server = redis.GetServer(endpoint);
            if (!server.IsConnected || server.IsReplica)
            {
                continue;
            }
            await foreach (var name in server.KeysAsync(pattern: KeyPrefix + "*", pageSize: 1000).WithCancellation(cancellationToken))
            {
                names.Add(name);
            }
        }
        var database = redis.GetDatabase();
        var values = await Task.WhenAll(names.Select(n => database.StringGetAsync(n))).WaitAsync(cancellationToken);
        return [.. values.Where(v => !v.IsNullOrEmpty).Select(v => JsonSerializer.Deserialize((byte[])v!, AuthJsonContext.Default.ApiKeyRecord)!)];
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

    public Task<IReadOnlyList<ApiKeyRecord>> ListAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ApiKeyRecord>>([.. _keys.Values]);
}
