using System.Threading.Channels;

namespace Onyx.Gateway.Batching;

/// <summary>
/// What a request leaves behind for later (a call-log line, an audit record, a usage record) goes into this queue
/// without waiting, and one loop writes it in batches: one system call or one Redis round trip for many records.
/// The call log, the audit trail and the rate limiter each own one and say only how a batch is written; the queue,
/// the gathering of a batch, the wake-ups and the final drain are here. Hand-written over
/// <see cref="Channel{T}"/>: no library of the field offers this loop, and it is small.
/// <para>
/// Write-through (<see cref="WriteThrough"/>) has no loop of its own: the first record of a quiet moment is written by
/// the caller that adds it, so its write is sent before <see cref="TryAdd"/> returns — ordered before anything the
/// caller sends next on the same connection (the rate limiter's next admission must see the last call's tokens);
/// records added meanwhile are written by that same write, next, in batches, until the queue is empty.
/// </para>
/// </summary>
internal sealed class BatchWriter<T>
{
    private readonly Channel<T> _queue;
    private readonly int _batchSize;
    private readonly TimeSpan _gather;
    private readonly WriteBatch _write;
    private readonly Func<CancellationToken, Task<TimeSpan?>>? _between;
    private readonly TimeProvider _time;
    private readonly List<T> _batch;
    private int _writing;

    /// <summary>Writes <paramref name="batch"/>; <paramref name="final"/> at shutdown, when <paramref name="cancellationToken"/> is none.</summary>
    public delegate Task WriteBatch(List<T> batch, bool final, CancellationToken cancellationToken);

    /// <param name="capacity">Records the queue holds; past it <see cref="TryAdd"/> says no and the owner decides.</param>
    /// <param name="batchSize">The most records one write gets.</param>
    /// <param name="gather">
    /// How long a batch may gather after its first record (zero: written at once). Real time, whatever clock the
    /// records are stamped with: it only decides how many share a write.
    /// </param>
    /// <param name="between">
    /// Other work the loop does between batches (the audit trail's replay of its spill file); returns when it wants to
    /// be called again even if no record comes (null: only after the next batch).
    /// </param>
    /// <param name="time">The clock of <paramref name="between"/>'s wake-ups.</param>
    public BatchWriter(int capacity, int batchSize, TimeSpan gather, WriteBatch write,
        Func<CancellationToken, Task<TimeSpan?>>? between = null, TimeProvider? time = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        _queue = Channel.CreateBounded<T>(new BoundedChannelOptions(capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        _batchSize = batchSize;
        _gather = gather;
        _write = write;
        _between = between;
        _time = time ?? TimeProvider.System;
        _batch = new List<T>(Math.Min(batchSize, 1024));
    }

    /// <summary>A writer whose records are written by the callers that add them (see the type's remarks).</summary>
    public static BatchWriter<T> WriteThrough(int capacity, int batchSize, WriteBatch write) =>
        new(capacity, batchSize, TimeSpan.Zero, write) { _writeThrough = true };

    private bool _writeThrough;

    /// <summary>Records queued or taken for a write that has not finished.</summary>
    public int Pending => _queue.Reader.Count + _batch.Count;

    /// <summary>Queues <paramref name="record"/>; false when the queue is full or closed (the caller keeps it another way).</summary>
    public bool TryAdd(T record)
    {
        if (_writeThrough && Interlocked.CompareExchange(ref _writing, 1, 0) == 0)
        {
            _ = WriteThroughAsync([record]);
            return true;
        }
        return _queue.Writer.TryWrite(record);
    }

    /// <summary>The one write-through in flight: this batch, then whatever queued meanwhile, until the queue is empty.</summary>
    private async Task WriteThroughAsync(List<T> batch)
    {
        while (true)
        {
            await _write(batch, false, CancellationToken.None);
            batch = [];
            while (batch.Count < _batchSize && _queue.Reader.TryRead(out var queued))
            {
                batch.Add(queued);
            }
            if (batch.Count > 0)
            {
                continue;
            }
            // A full fence: the check below must not be read before the flag is down.
            Interlocked.Exchange(ref _writing, 0);
            // A record queued between the last read and the line above would wait for the next caller: take it now.
            if (!_queue.Reader.TryPeek(out _) || Interlocked.CompareExchange(ref _writing, 1, 0) != 0)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Writes batches until <paramref name="stoppingToken"/> is cancelled (an <see cref="OperationCanceledException"/>)
    /// or the queue is closed and empty. What a cancelled write held stays for <see cref="DrainAsync"/>.
    /// </summary>
    public async Task RunAsync(CancellationToken stoppingToken)
    {
        if (_writeThrough)
        {
            throw new InvalidOperationException("A write-through writer has no loop: its callers write.");
        }
        Task<bool>? ready = null;
        while (true)
        {
            var wake = _between is null ? null : await _between(stoppingToken);
            ready ??= _queue.Reader.WaitToReadAsync(stoppingToken).AsTask();
            if (!ready.IsCompleted && wake is { } wait)
            {
                using var timer = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                await Task.WhenAny(ready, Task.Delay(wait > TimeSpan.Zero ? wait : TimeSpan.Zero, _time, timer.Token));
                await timer.CancelAsync();
                if (!ready.IsCompleted)
                {
                    continue;
                }
            }
            if (!await ready)
            {
                return;
            }
            ready = null;
            if (_gather > TimeSpan.Zero && _queue.Reader.Count < _batchSize)
            {
                await Task.Delay(_gather, stoppingToken);
            }
            while (_batch.Count < _batchSize && _queue.Reader.TryRead(out var record))
            {
                _batch.Add(record);
            }
            await _write(_batch, false, stoppingToken);
            _batch.Clear();
        }
    }

    /// <summary>
    /// Closes the queue and writes everything still in it (and what a cancelled write held), in batches, as final
    /// writes. Returns how many records that was. A record added afterwards is refused by <see cref="TryAdd"/>.
    /// </summary>
    public async Task<int> DrainAsync()
    {
        _queue.Writer.TryComplete();
        var drained = _batch.Count;
        while (_queue.Reader.TryRead(out var record))
        {
            _batch.Add(record);
            drained++;
            if (_batch.Count == _batchSize)
            {
                await _write(_batch, true, CancellationToken.None);
                _batch.Clear();
            }
        }
        if (_batch.Count > 0)
        {
            await _write(_batch, true, CancellationToken.None);
            _batch.Clear();
        }
        return drained;
    }

    /// <summary>Closes the queue: the loop ends once it is empty (a write-through finishes what is queued).</summary>
    public void Complete() => _queue.Writer.TryComplete();
}
