using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;

namespace Onyx.Gateway.Tests.TestHost;

/// <summary>
/// The measurements one gateway records on the instruments of one meter from now on, so a test can wait for a counter
/// to reach a value: each measurement wakes the waiter.
/// </summary>
public sealed class MeterWatch : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly Signal _measured = new();
    private readonly ConcurrentQueue<(string Instrument, long Value, KeyValuePair<string, object?>[] Tags)> _measurements = new();

    /// <param name="meterName">The meter (e.g. <c>Onyx.Gateway.Audit</c>); only <paramref name="gateway"/>'s, as meters of every gateway in the process share names.</param>
    public MeterWatch(GatewayHost gateway, string meterName)
    {
        var scope = gateway.Services.GetRequiredService<IMeterFactory>();
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == meterName && ReferenceEquals(instrument.Meter.Scope, scope))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            _measurements.Enqueue((instrument.Name, value, tags.ToArray()));
            _measured.Pulse();
        });
        _listener.Start();
    }

    /// <summary>The sum of what <paramref name="instrument"/> recorded with tag <paramref name="tag"/> = <paramref name="value"/>.</summary>
    public long Total(string instrument, string tag, string value) => _measurements
        .Where(m => m.Instrument == instrument && m.Tags.Any(t => t.Key == tag && Equals(t.Value, value)))
        .Sum(m => m.Value);

    /// <summary>
    /// Completes once <paramref name="done"/> holds, checked now and after each measurement; throws
    /// <see cref="TimeoutException"/> naming <paramref name="what"/> after <paramref name="timeout"/>.
    /// </summary>
    public Task WaitUntilAsync(Func<MeterWatch, bool> done, TimeSpan timeout, string what) =>
        _measured.WaitForAsync(() => this, done, timeout, what);

    public void Dispose() => _listener.Dispose();
}
