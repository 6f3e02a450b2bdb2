namespace Onyx.Gateway.Tests.TestHost;

/// <summary>
/// Something that changes (logs written, spans ended, Redis keys written, a counter moved) and the tests that wait for
/// a condition on it: the condition is checked at once and again after each change, never on a timer.
/// </summary>
public sealed class Signal
{
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Wakes every waiter: each checks its condition again.</summary>
    public void Pulse() => Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>
    /// Reads the state with <paramref name="read"/> now and after every pulse, until <paramref name="done"/> holds for
    /// it; returns that state. Throws <see cref="TimeoutException"/> naming <paramref name="what"/> (and, with
    /// <paramref name="describe"/>, the last state read) after <paramref name="timeout"/>.
    /// </summary>
    public async Task<T> WaitForAsync<T>(Func<Task<T>> read, Func<T, bool> done, TimeSpan timeout, string what, Func<T, string>? describe = null)
    {
        using var cancel = new CancellationTokenSource(timeout);
        while (true)
        {
            // Taken before the read: a change between the read and the wait still wakes it.
            var changed = Volatile.Read(ref _next).Task;
            var state = await read();
            if (done(state))
            {
                return state;
            }
            try
            {
                await changed.WaitAsync(cancel.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"Waited {timeout.TotalSeconds:0.###} s for {what}" + (describe is null ? "." : $"; last seen: {describe(state)}."));
            }
        }
    }

    /// <inheritdoc cref="WaitForAsync{T}(Func{Task{T}}, Func{T, bool}, TimeSpan, string, Func{T, string}?)"/>
    public Task<T> WaitForAsync<T>(Func<T> read, Func<T, bool> done, TimeSpan timeout, string what, Func<T, string>? describe = null) =>
        WaitForAsync(() => Task.FromResult(read()), done, timeout, what, describe);
}
