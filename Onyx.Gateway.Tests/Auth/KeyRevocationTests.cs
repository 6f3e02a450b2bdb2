using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Auth;
using Onyx.Gateway.Configuration;

namespace Onyx.Gateway.Tests.Auth;

/// <summary>A key deleted while a replica is looking it up is not cached: revocation has no 30-second window.</summary>
public sealed class KeyRevocationTests
{
    [Fact]
    public async Task ALookupOvertakenByADeletionCachesNothing()
    {
        var store = new HeldKeyStore();
        var registry = new KeyRegistry(AccessConfiguration.Build(new LiteLlmOptions(), new ConfigurationBuilder().Build(), TimeProvider.System, out _),
            store, TimeProvider.System, Options.Create(new OnyxOptions { Auth = { RedisTimeout = TimeSpan.FromSeconds(10) } }), NullLogger<KeyRegistry>.Instance);
        await registry.StartAsync(CancellationToken.None);
        var record = new ApiKeyRecord { Hash = ApiKeys.Hash("sk-revoked"), KeyName = "sk-...oked", UserId = "u" };

        // A lookup is in flight with the key's record as it was; the key is deleted (on another replica) before it returns.
        var inFlight = registry.FindAsync(record.Hash, CancellationToken.None);
        await store.Asked.Task.WaitAsync(TimeSpan.FromSeconds(10));
        store.Announce(record.Hash);
        store.Answer(record);
        Assert.Equal(record, await inFlight.WaitAsync(TimeSpan.FromSeconds(10)));

        // The next request reads the store again, and finds the key gone.
        store.Reset(answerAtOnce: null);
        Assert.Null(await registry.FindAsync(record.Hash, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(2, store.Lookups);
    }

    [Fact]
    public async Task ALookupNothingOvertookIsCached()
    {
        var store = new HeldKeyStore();
        var registry = new KeyRegistry(AccessConfiguration.Build(new LiteLlmOptions(), new ConfigurationBuilder().Build(), TimeProvider.System, out _),
            store, TimeProvider.System, Options.Create(new OnyxOptions()), NullLogger<KeyRegistry>.Instance);
        var record = new ApiKeyRecord { Hash = ApiKeys.Hash("sk-kept"), KeyName = "sk-...kept", UserId = "u" };
        store.Reset(answerAtOnce: record);

        await registry.FindAsync(record.Hash, CancellationToken.None);
        await registry.FindAsync(record.Hash, CancellationToken.None);

        Assert.Equal(1, store.Lookups);
    }

    /// <summary>A key store whose lookup waits until the test answers it, and whose change announcements the test sends.</summary>
    private sealed class HeldKeyStore : IKeyStore
    {
        private TaskCompletionSource<ApiKeyRecord?> _answer = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private Action<string>? _changed;

        public TaskCompletionSource Asked { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Lookups { get; private set; }

        public void Answer(ApiKeyRecord? record) => _answer.TrySetResult(record);

        public void Reset(ApiKeyRecord? answerAtOnce)
        {
            _answer = new TaskCompletionSource<ApiKeyRecord?>(TaskCreationOptions.RunContinuationsAsynchronously);
            _answer.SetResult(answerAtOnce);
        }

        public void Announce(string hash) => _changed?.Invoke(hash);

        public Task<ApiKeyRecord?> FindAsync(string hash, CancellationToken cancellationToken)
        {
            Lookups++;
            Asked.TrySetResult();
            return _answer.Task;
        }

        public Task SaveAsync(ApiKeyRecord record, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task<bool> DeleteAsync(string hash, CancellationToken cancellationToken) => Task.FromResult(true);

        public Task SubscribeAsync(Action<string> changed)
        {
            _changed = changed;
            return Task.CompletedTask;
        }

        public Task<IReadOnlyList<ApiKeyRecord>> ListAsync(CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<ApiKeyRecord>>([]);
    }
}
