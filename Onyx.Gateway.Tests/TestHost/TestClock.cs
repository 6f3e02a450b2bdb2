using Microsoft.Extensions.Time.Testing;

namespace Onyx.Gateway.Tests.TestHost;

/// <summary>The one start date of the tests' fake clocks.</summary>
public static class TestClock
{
    /// <summary>
    /// Monday 5 January 2026, 09:00:00 UTC. On a whole minute: a test may move the clock up to a minute less a tick
    /// within one of the deployment limits' UTC minutes, and a minute on crosses exactly one. Far from the ends of the
    /// day, the week (Monday 00:00) and the month, where budget windows start again.
    /// </summary>
    public static readonly DateTimeOffset Start = new(2026, 1, 5, 9, 0, 0, TimeSpan.Zero);

    /// <summary>A fake clock at <see cref="Start"/>, moved only by the test.</summary>
    public static FakeTimeProvider Create() => new(Start);
}
