using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Onyx.Gateway.Tests.TestHost;

/// <summary>Captures every log record the app writes, with its structured fields, for assertions.</summary>
public sealed class LogCapture : ILoggerProvider
{
    private readonly ConcurrentQueue<CapturedLog> _records = new();
    private readonly Signal _written = new();

    public IReadOnlyList<CapturedLog> Records => _records.ToArray();

    public IEnumerable<CapturedLog> Category(string category) => Records.Where(r => r.Category == category);

    /// <summary>The first record matching <paramref name="match"/>, once one is written (checked on each write, never on a timer).</summary>
    public async Task<CapturedLog> WaitForAsync(Func<CapturedLog, bool> match, TimeSpan timeout) =>
        (await _written.WaitForAsync(() => Records.FirstOrDefault(match), found => found is not null, timeout, "a matching log record"))!;

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, this);

    public void Dispose()
    {
    }

    private void Add(CapturedLog record)
    {
        _records.Enqueue(record);
        _written.Pulse();
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
}

public sealed record CapturedLog(string Category, LogLevel Level, int EventId, string Message, Dictionary<string, object?> Fields, Exception? Exception)
{
    public object? this[string field] => Fields.TryGetValue(field, out var value) ? value : null;
}
