using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Onyx.Gateway.Tests.TestHost;

/// <summary>Captures every log record the app writes, with its structured fields, for assertions.</summary>
public sealed class LogCapture : ILoggerProvider
{
    private readonly ConcurrentQueue<CapturedLog> _records = new();
    private readonly FakeSignal _signal = new();

    public IReadOnlyList<CapturedLog> Records => _records.ToArray();

    public IEnumerable<CapturedLog> Category(string category) => Records.Where(r => r.Category == category);

    /// <summary>Waits (without polling) until a record matching <paramref name="match"/> was written.</summary>
    public async Task<CapturedLog> WaitForAsync(Func<CapturedLog, bool> match, TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        while (true)
        {
            var waiter = _signal.Next();
            if (Records.FirstOrDefault(match) is { } found)
            {
                return found;
            }
            try
            {
                await waiter.WaitAsync(cancel.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException("No matching log record within " + timeout);
            }
        }
    }

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, this);

    public void Dispose()
    {
    }

    private void Add(CapturedLog record)
    {
        _records.Enqueue(record);
        _signal.Pulse();
    }

    private sealed class Logger(string category, LogCapture owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var fields = state as IReadOnlyList<KeyValuePair<string, object?>> ?? [];
            owner.Add(new CapturedLog(category, logLevel, eventId.Id, formatter(state, exception), fields.ToDictionary(f => f.Key, f => f.Value), exception));
        }
    }

    /// <summary>A pulse every waiter sees: each pulse completes the current task and arms a new one.</summary>
    private sealed class FakeSignal
    {
        private TaskCompletionSource _current = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Next() => Volatile.Read(ref _current).Task;

        public void Pulse() => Interlocked.Exchange(ref _current, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }
}

public sealed record CapturedLog(string Category, LogLevel Level, int EventId, string Message, Dictionary<string, object?> Fields, Exception? Exception)
{
    public object? this[string field] => Fields.TryGetValue(field, out var value) ? value : null;
}
