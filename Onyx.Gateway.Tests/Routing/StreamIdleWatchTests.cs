using Onyx.Gateway.Routing;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Routing;

public sealed class StreamIdleWatchTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    [Fact]
    public void CancelsWhenAWaitForTheUpstreamReachesTheLimit()
    {
        var time = TestClock.Create();
        using var attempt = new CancellationTokenSource();
        using var watch = new StreamIdleWatch(attempt, time, Limit);

        watch.Waiting();
        time.Advance(Limit - TimeSpan.FromMilliseconds(1));
        Assert.False(attempt.IsCancellationRequested);
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(attempt.IsCancellationRequested);
    }

    [Fact]
    public void ChunksArrivingInTimeKeepTheStreamAliveForever()
    {
        var time = TestClock.Create();
        using var attempt = new CancellationTokenSource();
        using var watch = new StreamIdleWatch(attempt, time, Limit);

        for (var i = 0; i < 100; i++)
        {
            watch.Waiting();
            time.Advance(Limit * 0.9);
            watch.Received();
        }

        Assert.False(attempt.IsCancellationRequested);
    }

    [Fact]
    public void TimeSpentOnASlowClientIsNotTheUpstreamsSilence()
    {
        var time = TestClock.Create();
        using var attempt = new CancellationTokenSource();
        using var watch = new StreamIdleWatch(attempt, time, Limit);

        watch.Waiting();
        time.Advance(Limit * 0.9);
        watch.Received();
        // The chunk takes five limits to reach a client that reads slowly: the upstream is not waited for meanwhile.
        time.Advance(Limit * 5);
        Assert.False(attempt.IsCancellationRequested);

        // The next wait counts from its own start.
        watch.Waiting();
        time.Advance(Limit * 0.9);
        Assert.False(attempt.IsCancellationRequested);
        time.Advance(Limit * 0.1);
        Assert.True(attempt.IsCancellationRequested);
    }
}
