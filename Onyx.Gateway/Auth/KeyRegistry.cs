using System.Collections.Concurrent;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Cluster;
using Onyx.Gateway.Configuration;
using StackExchange.Redis;

namespace Onyx.Gateway.Auth;

internal enum KeyCheck
{
    Valid,
    Missing,
    Invalid,
    Expired,

    /// <summary>The key is not in this replica's cache and the key store cannot be reached to look it up.</summary>
    Unverifiable,
}

/// <summary>
/// Answers "whose key is this?": the master key and config keys from memory, generated keys from the key store
/// through a short-lived cache (Redis is not asked on every request; other replicas' deletions arrive by pub/sub).
/// While <see cref="RedisConnectionWatch"/> says Redis is down, a key not in the cache is not looked up at all: it is
/// unverifiable at once. When Redis is back the cache is dropped, since deletions published meanwhile never arrived.
/// </summary>
internal sealed partial class KeyRegistry : IHostedService, IHealthCheck
{
    private readonly AccessConfiguration _access;
    private readonly IKeyStore _store;
    private readonly TimeProvider _time;
    private readonly AuthOptions _options;
    private readonly ILogger<KeyRegistry> _logger;
    private readonly RedisConnectionWatch? _watch;
    private readonly MemoryCache _cache = new(new MemoryCacheOptions { SizeLimit = 100_000 });
    // Lookups in flight, by hash: a burst of requests with a key this replica has not seen asks Redis once.
    private readonly ConcurrentDictionary<string, Task<ApiKeyRecord?>> _lookups = new(StringComparer.Ordinal);

    // Counts key changes (saves, deletions, other replicas' announcements). A lookup that a change overtook caches
    // nothing: what it read may be the record as it was before a deletion, and caching it would keep a revoked key
    // working for the cache's lifetime.
    private long _changes;

    public KeyRegistry(AccessConfiguration access, IKeyStore store, TimeProvider time, IOptions<OnyxOptions> options, ILogger<KeyRegistry> logger,
        RedisConnectionWatch? watch = null)
    {
        _watch = watch;
        _access = access;
        _store = store;
        _time = time;
        _options = options.Value.Auth;
        _logger = logger;
    }

    public bool Open => _access.Open;

    public bool HasMasterKey => _access.MasterKeyHash is not null;

    public async Task<(KeyCheck Check, Caller? Caller, ApiKeyRecord? Record)> CheckAsync(string? presented, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(presented))
        {
            return (KeyCheck.Missing, null, null);
        }
        var hash = ApiKeys.Hash(presented);
        if (_access.MasterKeyHash is { } master && ApiKeys.HashesEqual(hash, master))
        {
            return (KeyCheck.Valid, Caller.Master, null);
        }
        ApiKeyRecord? record;
        if (_access.Keys.TryGetValue(hash, out var configured))
        {
            record = configured;
        }
        else if (_cache.TryGetValue(hash, out ApiKeyRecord? cached))
        {
            record = cached;
        }
        else if (_watch?.IsUp == false)
        {
            // Not logged per request: the watch logged the outage once, and the "keys" health check says what it means.
            return (KeyCheck.Unverifiable, null, null);
        }
        else
        {
            try
            {
                record = await FindAsync(hash, cancellationToken);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                Log.LookupFailed(_logger, ApiKeys.Name(presented), ex.Message);
                return (KeyCheck.Unverifiable, null, null);
            }
        }
        if (record is null || !ApiKeys.HashesEqual(record.Hash, hash))
        {
            return (KeyCheck.Invalid, null, null);
        }
        return record.ExpiredAt(_time.GetUtcNow())
            ? (KeyCheck.Expired, null, record)
            : (KeyCheck.Valid, Caller.For(record), record);
    }

    /// <summary>A generated key's record by hash, for <c>/key/info</c> and <c>/key/delete</c> (config keys included).</summary>
    public async Task<ApiKeyRecord?> FindAsync(string hash, CancellationToken cancellationToken)
    {
        if (_access.Keys.TryGetValue(hash, out var configured))
        {
            return configured;
        }
        if (_cache.TryGetValue(hash, out ApiKeyRecord? cached))
        {
            return cached;
        }
        if (_watch?.State is { Up: false } down)
        {
            throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, $"Redis is unreachable ({down.Reason}).");
        }
        if (!_lookups.TryGetValue(hash, out var lookup))
        {
            var started = new TaskCompletionSource<ApiKeyRecord?>(TaskCreationOptions.RunContinuationsAsynchronously);
            lookup = _lookups.GetOrAdd(hash, started.Task);
            if (lookup == started.Task)
            {
                _ = LookUpAsync(hash, started);
            }
        }
        try
        {
            return await lookup.WaitAsync(_options.RedisTimeout, cancellationToken);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            _watch?.CallFailed("keys", ex);
            throw;
        }
    }

    private async Task LookUpAsync(string hash, TaskCompletionSource<ApiKeyRecord?> lookup)
    {
        var changes = Volatile.Read(ref _changes);
        try
        {
            var record = await _store.FindAsync(hash, CancellationToken.None);
            // Unknown keys are remembered briefly too, so a stream of wrong keys does not become a stream of Redis reads.
            var ttl = record is null ? TimeSpan.FromSeconds(Math.Min(5, _options.KeyCacheTtl.TotalSeconds)) : _options.KeyCacheTtl;
            if (ttl > TimeSpan.Zero && Volatile.Read(ref _changes) == changes)
            {
                _cache.Set(hash, record, new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = ttl });
            }
            lookup.TrySetResult(record);
        }
        catch (Exception ex)
        {
            lookup.TrySetException(ex);
        }
        finally
        {
            // Only this lookup: one started after a change took its place and is not this one's to end.
            _lookups.TryRemove(KeyValuePair.Create(hash, lookup.Task));
        }
    }

    /// <summary>
    /// A key changed or was deleted (here or on another replica): its cached copy goes, and so does a lookup in flight,
    /// so requests from now on read the key store again rather than join a read that may predate the change.
    /// </summary>
    private void Forget(string hash)
    {
        Interlocked.Increment(ref _changes);
        _lookups.TryRemove(hash, out _);
        _cache.Remove(hash);
    }

    public async Task SaveAsync(ApiKeyRecord record, CancellationToken cancellationToken)
    {
        Forget(record.Hash);
        await _store.SaveAsync(record, cancellationToken);
        Forget(record.Hash);
    }

    public async Task<bool> DeleteAsync(string hash, CancellationToken cancellationToken)
    {
        Forget(hash);
        var deleted = await _store.DeleteAsync(hash, cancellationToken);
        Forget(hash);
        return deleted;
    }

    public bool IsConfigured(string hash) => _access.Keys.ContainsKey(hash);

    /// <summary>Every key: those of the config file, then the generated ones.</summary>
    public async Task<IReadOnlyList<ApiKeyRecord>> ListAsync(CancellationToken cancellationToken) =>
        [.. _access.Keys.Values, .. (await _store.ListAsync(cancellationToken)).Where(k => !_access.Keys.ContainsKey(k.Hash))];

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (_watch is not null)
        {
            _watch.Follow(OnRedisChanged);
        }
        try
        {
            await _store.SubscribeAsync(hash =>
            {
                Forget(hash);
                Log.KeyChanged(_logger, hash.Length > 8 ? hash[..8] : hash);
            });
        }
        catch (RedisException ex)
        {
            // Without the subscription, cached keys still expire after KeyCacheTtl.
            Log.SubscribeFailed(_logger, ex.Message);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        if (_watch is not null)
        {
            _watch.Unfollow(OnRedisChanged);
        }
        return Task.CompletedTask;
    }

    private void OnRedisChanged(RedisConnectionState state)
    {
        if (state.Up)
        {
            // Another replica may have deleted or changed a key meanwhile, and its notice was lost with the connection.
            Interlocked.Increment(ref _changes);
            _cache.Clear();
        }
    }

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var data = new Dictionary<string, object> { ["cached_keys"] = _cache.Count };
        var result = _watch is null ? HealthCheckResult.Healthy("Generated keys live in this process (no Redis).", data)
            : _watch.State is { Up: false } down ? HealthCheckResult.Degraded(
                $"Redis is unreachable ({down.Reason}): only the master key, config keys and the generated keys this replica has cached are accepted; others get 503 key_store_unavailable.",
                data: data)
            : HealthCheckResult.Healthy("Generated keys are looked up in Redis.", data);
        return Task.FromResult(result);
    }

    private static partial class Log
    {
        [LoggerMessage(6003, LogLevel.Warning, "Could not look up API key {KeyName} in Redis: {Error}")]
        public static partial void LookupFailed(ILogger logger, string keyName, string error);

        [LoggerMessage(6005, LogLevel.Information, "API key with token {TokenPrefix}… was changed or deleted; this replica dropped its cached copy")]
        public static partial void KeyChanged(ILogger logger, string tokenPrefix);

        [LoggerMessage(6004, LogLevel.Warning, "Could not subscribe to key changes in Redis ({Error}); cached keys expire on their own")]
        public static partial void SubscribeFailed(ILogger logger, string error);
    }
}
