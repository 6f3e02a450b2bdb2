namespace Onyx.Gateway.Routing;

/// <summary>
/// Cancels a stream attempt's timer once the gateway has waited <c>limit</c> for its upstream's next chunk (time the
/// gateway spends handing a chunk to a slow client does not count). Each wait only notes when it began; the watch's
/// own timer wakes once per <c>limit</c> and either cancels or sleeps for what is left. Re-arming
/// a <see cref="CancellationTokenSource"/> for every chunk instead would take a timer-queue lock per chunk, which
/// the cores contend for while streaming (docs/design-notes.md).
/// Hand-written because neither the BCL nor Polly offers an inactivity timeout that is reset by a timestamp.
/// </summary>
internal sealed class StreamIdleWatch : IDisposable
{
    private readonly CancellationTokenSource _attempt;
    private readonly TimeProvider _time;
    private readonly TimeSpan _limit;
    private readonly ITimer _timer;
    private const long NotWaiting = long.MinValue;
    private long _waitingSince = NotWaiting;

    public StreamIdleWatch(CancellationTokenSource attempt, TimeProvider time, TimeSpan limit)
    {
        _attempt = attempt;
        _time = time;
        _limit = limit;
        _timer = time.CreateTimer(static state => ((StreamIdleWatch)state!).Check(), this, limit, Timeout.InfiniteTimeSpan);
    }

    /// <summary>The gateway starts waiting for the next chunk: the limit counts from now.</summary>
    public void Waiting() => Volatile.Write(ref _waitingSince, _time.GetTimestamp());

    /// <summary>The wait is over (a chunk, the end, or a failure).</summary>
    public void Received() => Volatile.Write(ref _waitingSince, NotWaiting);

    private void Check()
    {
        var since = Volatile.Read(ref _waitingSince);
        var idle = since == NotWaiting ? TimeSpan.Zero : _time.GetElapsedTime(since);
        if (idle >= _limit)
        {
            try
            {
                _attempt.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // The attempt ended meanwhile.
            }
            return;
        }
        try
        {
            _timer.Change(_limit - idle, Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
            // Disposed meanwhile: the stream is over.
        }
    }

    public void Dispose() => _timer.Dispose();
}
