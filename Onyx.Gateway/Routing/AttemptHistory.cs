using Onyx.Gateway.Configuration;
using Onyx.Gateway.Providers;

namespace Onyx.Gateway.Routing;

/// <summary>One request's attempts on one deployment: when each started, and how many were retries.</summary>
internal sealed class AttemptHistory
{
    private readonly List<long> _starts = [];

    public int Retries { get; private set; }

    public void Started(long timestamp) => _starts.Add(timestamp);

    public void Retrying() => Retries++;

    /// <summary>Whether an attempt starting <paramref name="after"/> from <paramref name="now"/> keeps within the attempt window's limit.</summary>
    public bool Allows(long now, TimeSpan after, TimeProvider time)
    {
        var start = now + (long)(after.TotalSeconds * time.TimestampFrequency);
        return _starts.Count(s => time.GetElapsedTime(s, start) < FailurePolicy.AttemptWindow) < FailurePolicy.MaxAttemptsInWindow;
    }

    /// <summary>How long after <paramref name="now"/> the attempt window has room for one more attempt (zero when it has then).</summary>
    public TimeSpan WaitForRoom(long now, TimeProvider time)
    {
        if (_starts.Count < FailurePolicy.MaxAttemptsInWindow)
        {
            return TimeSpan.Zero;
        }
        var oldest = _starts[^FailurePolicy.MaxAttemptsInWindow];
        var wait = FailurePolicy.AttemptWindow - time.GetElapsedTime(oldest, now);
        return wait > TimeSpan.Zero ? wait : TimeSpan.Zero;
    }
}
