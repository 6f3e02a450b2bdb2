using StackExchange.Redis;

namespace Onyx.Gateway.Tests.TestHost;

/// <summary>
/// Waits for what a gateway writes to Redis off the request's path (spend, audit records, replayed spills): the
/// condition is checked again each time Redis reports a write through its keyspace notifications, never on a timer.
/// </summary>
public static class RedisWrites
{
    /// <summary>
    /// Reads the state with <paramref name="read"/> now and after every write to the Redis at
    /// <paramref name="connectionString"/>, until <paramref name="done"/> holds for it; returns that state. Throws
    /// <see cref="TimeoutException"/> naming <paramref name="what"/> after <paramref name="timeout"/>.
    /// </summary>
    public static async Task<T> WaitForAsync<T>(string connectionString, Func<Task<T>> read, Func<T, bool> done, TimeSpan timeout, string what,
        Func<T, string>? describe = null)
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(connectionString + ",allowAdmin=true").WaitAsync(timeout);
        // K: an event on each written key's channel; A: every kind of write (strings, hashes, sorted sets, streams, expiries).
        await redis.GetServers().Single().ConfigSetAsync("notify-keyspace-events", "KA").WaitAsync(timeout);
        var written = new Signal();
        await redis.GetSubscriber().SubscribeAsync(RedisChannel.Pattern("__keyspace@*__:*"), (_, _) => written.Pulse()).WaitAsync(timeout);
        return await written.WaitForAsync(read, done, timeout, what, describe);
    }
}
