using Microsoft.Extensions.Time.Testing;
using Onyx.Gateway.Resilience;

namespace Onyx.Gateway.Tests.Resilience;

public sealed class CircuitBreakerTests
{
    private readonly FakeTimeProvider _time = new();
    private readonly List<(CircuitState From, CircuitState To)> _transitions = [];

    private CircuitBreaker Create(int allowedFails = 3) =>
        new("primary", allowedFails, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(60), _time, (_, from, to, _, _) => _transitions.Add((from, to)));

    private static void Fail(CircuitBreaker breaker)
    {
        Assert.True(breaker.TryAcquire(out var permit));
        breaker.OnFailure(permit, "http_500");
    }

    [Fact]
    public void PassesSuccessfulCallsThrough()
    {
        var breaker = Create();
        for (var i = 0; i < 10; i++)
        {
            Assert.True(breaker.TryAcquire(out var permit));
            Assert.False(permit.IsProbe);
            breaker.OnSuccess(permit);
        }
        Assert.Equal(CircuitState.Closed, breaker.State);
        Assert.Empty(_transitions);
    }

    [Fact]
    public void OpensAfterThreeFailuresWithinAMinute()
    {
        var breaker = Create();
        Fail(breaker);
        _time.Advance(TimeSpan.FromSeconds(20));
        Fail(breaker);
        Assert.Equal(CircuitState.Closed, breaker.State);
        _time.Advance(TimeSpan.FromSeconds(20));
        Fail(breaker);

        Assert.Equal(CircuitState.Open, breaker.State);
        Assert.False(breaker.TryAcquire(out _));
        Assert.Equal([(CircuitState.Closed, CircuitState.Open)], _transitions);
    }

    [Fact]
    public void StaysClosedWhenFailuresAreSpreadBeyondTheWindow()
    {
        var breaker = Create();
        Fail(breaker);
        Fail(breaker);
        _time.Advance(TimeSpan.FromSeconds(61));
        Fail(breaker);
        Assert.Equal(CircuitState.Closed, breaker.State);
        Assert.True(breaker.TryAcquire(out _));
    }

    [Fact]
    public void LetsExactlyOneProbeThroughAfterTheCooldown()
    {
        var breaker = Create();
        Fail(breaker); Fail(breaker); Fail(breaker);

        _time.Advance(TimeSpan.FromSeconds(59));
        Assert.False(breaker.TryAcquire(out _));

        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(CircuitState.HalfOpen, breaker.State);
        Assert.True(breaker.TryAcquire(out var probe));
        Assert.True(probe.IsProbe);
        Assert.False(breaker.TryAcquire(out _)); // a second caller waits for the probe's verdict
        Assert.False(breaker.TryAcquire(out _));
    }

    [Fact]
    public void ResetsAfterTheTimeoutWhenTheProbeSucceeds()
    {
        var breaker = Create();
        Fail(breaker); Fail(breaker); Fail(breaker);
        _time.Advance(TimeSpan.FromSeconds(60));

        Assert.True(breaker.TryAcquire(out var probe));
        breaker.OnSuccess(probe);

        Assert.Equal(CircuitState.Closed, breaker.State);
        Assert.True(breaker.TryAcquire(out var next));
        Assert.False(next.IsProbe);
        Assert.Equal([(CircuitState.Closed, CircuitState.Open), (CircuitState.Open, CircuitState.HalfOpen), (CircuitState.HalfOpen, CircuitState.Closed)], _transitions);
    }

    [Fact]
    public void ReopensForAnotherCooldownWhenTheProbeFails()
    {
        var breaker = Create();
        Fail(breaker); Fail(breaker); Fail(breaker);
        _time.Advance(TimeSpan.FromSeconds(60));

        Assert.True(breaker.TryAcquire(out var probe));
        breaker.OnFailure(probe, "timeout");

        Assert.Equal(CircuitState.Open, breaker.State);
        _time.Advance(TimeSpan.FromSeconds(30));
        Assert.False(breaker.TryAcquire(out _));
        _time.Advance(TimeSpan.FromSeconds(30));
        Assert.True(breaker.TryAcquire(out var second));
        Assert.True(second.IsProbe);
    }

    [Fact]
    public void AnAbandonedProbeLetsTheNextCallerProbe()
    {
        var breaker = Create();
        Fail(breaker); Fail(breaker); Fail(breaker);
        _time.Advance(TimeSpan.FromSeconds(60));

        Assert.True(breaker.TryAcquire(out var probe));
        breaker.OnAbandoned(probe);

        Assert.True(breaker.TryAcquire(out var next));
        Assert.True(next.IsProbe);
    }

    [Fact]
    public void TripOpensAtOnce()
    {
        var breaker = Create();
        Assert.True(breaker.TryAcquire(out var permit));
        breaker.Trip(permit, "http_401");

        Assert.Equal(CircuitState.Open, breaker.State);
        Assert.NotNull(breaker.OpenUntil);
        Assert.Equal(_time.GetUtcNow() + TimeSpan.FromSeconds(60), breaker.OpenUntil!.Value);
    }
}
