namespace Onyx.Gateway.Tests.TestHost;

/// <summary>
/// Asking again until a condition holds, for the rare condition nothing signals: a lock held by another process, which
/// the operating system does not announce. Anything a gateway, a fake or Redis can signal is awaited on
/// <see cref="Signal"/> instead.
/// </summary>
public static class Eventually
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// Checks <paramref name="condition"/> every 20 ms until it holds; throws <see cref="TimeoutException"/> naming
    /// <paramref name="what"/> after <paramref name="timeout"/>.
    /// </summary>
    public static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        while (!condition())
        {
            if (DateTimeOffset.UtcNow >= deadline)
            {
                throw new TimeoutException($"Waited {timeout.TotalSeconds:0.###} s for {what}.");
            }
            await Task.Delay(Interval);
        }
    }
}
