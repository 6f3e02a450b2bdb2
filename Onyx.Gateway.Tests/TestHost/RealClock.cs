namespace Onyx.Gateway.Tests.TestHost;

/// <summary>
/// Waiting for real time to pass, for the few tests whose subject runs on a clock no fake drives: Redis's (a key's TTL,
/// a window counted on the server's TIME) and the instants the gateway announces from it. Everything else moves a
/// fake clock (<see cref="TestClock"/>).
/// </summary>
public static class RealClock
{
    /// <summary>What these waits are: a cooldown or a window of a few seconds; anything longer is a mistake.</summary>
    private static readonly TimeSpan Longest = TimeSpan.FromSeconds(30);

    /// <summary>Returns once the wall clock is at or past <paramref name="instant"/>.</summary>
    public static async Task WaitUntilAsync(DateTimeOffset instant)
    {
        var wait = instant - DateTimeOffset.UtcNow;
        if (wait > Longest)
        {
            throw new ArgumentOutOfRangeException(nameof(instant), $"{instant:O} is {wait.TotalSeconds:0.#} s away; real-time waits in tests are at most {Longest.TotalSeconds} s.");
        }
        // Task.Delay can end a little early (a 7 ms delay was seen to end after 5.35 ms): the clock says when it is over.
        while (DateTimeOffset.UtcNow < instant)
        {
            await Task.Delay(instant - DateTimeOffset.UtcNow + TimeSpan.FromMilliseconds(1));
        }
    }

    /// <summary>Returns once <paramref name="wait"/> has passed on the wall clock.</summary>
    public static Task WaitAsync(TimeSpan wait) => WaitUntilAsync(DateTimeOffset.UtcNow + wait);
}
