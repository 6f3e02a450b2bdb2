namespace Onyx.Gateway.Tests.Fakes;

/// <summary>A thread-safe counter whose readers can await a value without polling.</summary>
internal sealed class FakeCounter(string what)
{
    private readonly Lock _gate = new();
    private readonly List<(int Target, TaskCompletionSource Signal)> _waiters = [];
    private int _value;

    public int Value
    {
        get
        {
            lock (_gate)
            {
                return _value;
            }
        }
    }

    public void Increment()
    {
        List<TaskCompletionSource> reached = [];
        lock (_gate)
        {
            _value++;
            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                if (_waiters[i].Target <= _value)
                {
                    reached.Add(_waiters[i].Signal);
                    _waiters.RemoveAt(i);
                }
            }
        }

        foreach (var signal in reached)
        {
            signal.TrySetResult();
        }
    }

    public void Reset()
    {
        lock (_gate)
        {
            _value = 0;
        }
    }

    public async Task WaitAsync(int target, TimeSpan timeout)
    {
        TaskCompletionSource signal;
        lock (_gate)
        {
            if (_value >= target)
            {
                return;
            }

            signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((target, signal));
        }

        try
        {
            await signal.Task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            lock (_gate)
            {
                _waiters.RemoveAll(waiter => waiter.Signal == signal);
            }

            throw new TimeoutException($"Waited {timeout.TotalSeconds:0.###} s for {target} {what}, saw {Value}.");
        }
    }
}
