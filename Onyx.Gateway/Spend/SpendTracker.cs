using System.Threading.Channels;
using Onyx.Gateway.Auth;

namespace Onyx.Gateway.Spend;

/// <summary>
/// Adds each call's cost to its API key's running total in the key store (Redis when there is one, shared by every
/// replica). Off the request path: a call only queues its cost; a background loop sums what is queued per key and
/// writes one increment per key per burst. A total the store could not take is kept and written again later.
/// </summary>
internal sealed partial class SpendTracker(IKeyStore store, TimeProvider time, ILogger<SpendTracker> logger) : BackgroundService
{
    /// <summary>How soon an increment the store refused is tried again.</summary>
    internal static readonly TimeSpan RetryInterval = TimeSpan.FromSeconds(1);

    private readonly Channel<(string Hash, decimal Cost)> _costs = Channel.CreateBounded<(string, decimal)>(new BoundedChannelOptions(10_000)
    {
        SingleReader = true,
        FullMode = BoundedChannelFullMode.Wait,
    });

    private readonly Dictionary<string, decimal> _pending = new(StringComparer.Ordinal);

    public void Add(string keyHash, decimal cost)
    {
        if (cost > 0 && !_costs.Writer.TryWrite((keyHash, cost)))
        {
            Log.Dropped(logger, keyHash[..Math.Min(8, keyHash.Length)], cost);
        }
    }

    /// <summary>The key's total spend as the store has it (this replica's last few calls may still be on their way).</summary>
    public Task<decimal> GetAsync(string keyHash, CancellationToken cancellationToken) => store.GetSpendAsync(keyHash, cancellationToken);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (true)
            {
                if (_pending.Count == 0)
                {
                    if (!await _costs.Reader.WaitToReadAsync(stoppingToken))
                    {
                        return;
                    }
                }
                else
                {
                    // Something is still unwritten: come back to it after a pause even if no new call arrives.
                    using var retry = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                    retry.CancelAfter(RetryInterval);
                    try
                    {
                        await _costs.Reader.WaitToReadAsync(retry.Token);
                    }
                    catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
                    {
                    }
                }
                await FlushAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down: one last try, bounded, so a dead store cannot hold the shutdown up.
            using var last = new CancellationTokenSource(TimeSpan.FromSeconds(2), time);
            await FlushAsync(last.Token);
        }
    }

    private async Task FlushAsync(CancellationToken cancellationToken)
    {
        while (_costs.Reader.TryRead(out var cost))
        {
            _pending[cost.Hash] = _pending.GetValueOrDefault(cost.Hash) + cost.Cost;
        }
        if (_pending.Count == 0)
        {
            return;
        }
        try
        {
            await store.AddSpendAsync(_pending, cancellationToken);
            _pending.Clear();
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.WriteFailed(logger, _pending.Count, ex.Message);
        }
        catch (OperationCanceledException)
        {
            Log.WriteFailed(logger, _pending.Count, "timed out");
        }
    }

    private static partial class Log
    {
        [LoggerMessage(3101, LogLevel.Warning, "Could not add the spend of {Keys} API keys to the key store ({Error}); it is kept and written again")]
        public static partial void WriteFailed(ILogger logger, int keys, string error);

        [LoggerMessage(3102, LogLevel.Warning, "Spend queue is full: {Cost} USD of the key with token {TokenPrefix}… was not counted")]
        public static partial void Dropped(ILogger logger, string tokenPrefix, decimal cost);
    }
}
