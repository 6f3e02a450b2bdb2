using Microsoft.Extensions.Time.Testing;
using Onyx.Gateway.Resilience;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Resilience;

public sealed class CircuitBreakerTests
{
    private readonly FakeTimeProvider _time = TestClock.Create();
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

    // Cluster-wide (a replica of several): what this breaker announces, and how it follows the others.

    [Fact]
    public async Task WithoutAClusterAProbeIsDecidedAtOnce()
    {
        var breaker = Create();
        Fail(breaker); Fail(breaker); Fail(breaker);
        _time.Advance(TimeSpan.FromSeconds(60));

        var task = breaker.TryAcquireAsync();
        Assert.True(task.IsCompletedSuccessfully);
        Assert.Equal((true, new CircuitPermit(IsProbe: true)), await task);
    }

    [Fact]
    public async Task AnnouncesItsOwnOpensAndVerdictsButNotTheOnesItFollows()
    {
        var cluster = new FakeSync();
        var breaker = Create(cluster);
        breaker.FollowOpen("replica-b#1", TimeSpan.FromSeconds(60), "replica-b");
        breaker.FollowClose("replica-b");
        Assert.Empty(cluster.Announced);

        Fail(breaker); Fail(breaker); Fail(breaker);
        _time.Advance(TimeSpan.FromSeconds(60));
        var (_, probe) = await breaker.TryAcquireAsync();
        breaker.OnSuccess(probe);

        Assert.Equal(["opened for 60s", "closed"], cluster.Announced);
        Assert.Equal(["fake#1"], cluster.ClaimedWith);
    }

    [Fact]
    public void FollowsAnotherReplicasOpenForTheTimeItHasLeft()
    {
        var breaker = Create(new FakeSync());

        breaker.FollowOpen("replica-b#1", TimeSpan.FromSeconds(20), "replica-b");

        Assert.Equal(CircuitState.Open, breaker.State);
        Assert.Equal(_time.GetUtcNow() + TimeSpan.FromSeconds(20), breaker.OpenUntil);
        Assert.False(breaker.TryAcquire(out _));
        _time.Advance(TimeSpan.FromSeconds(20));
        Assert.Equal(CircuitState.HalfOpen, breaker.State);
    }

    [Fact]
    public async Task WaitsForTheProbeOfTheReplicaThatClaimedIt()
    {
        var cluster = new FakeSync { Claim = new ProbeClaim(ProbeVerdict.ProbingElsewhere, TimeSpan.FromSeconds(30), Replica: "replica-b") };
        var breaker = Create(cluster);
        breaker.FollowOpen("replica-b#1", TimeSpan.FromSeconds(60), "replica-b");
        _time.Advance(TimeSpan.FromSeconds(60));

        Assert.False((await breaker.TryAcquireAsync()).Acquired);
        Assert.False((await breaker.TryAcquireAsync()).Acquired); // decided from memory: Redis is asked once
        Assert.Equal(["replica-b#1"], cluster.ClaimedWith);
        Assert.Equal(CircuitState.HalfOpen, breaker.State);

        breaker.FollowClose("replica-b");

        var (acquired, permit) = await breaker.TryAcquireAsync();
        Assert.True(acquired);
        Assert.False(permit.IsProbe);
    }

    [Fact]
    public async Task ClaimsTheProbeAgainWhenTheOtherReplicaGivesItUp()
    {
        var cluster = new FakeSync { Claim = new ProbeClaim(ProbeVerdict.ProbingElsewhere, TimeSpan.FromSeconds(30), Replica: "replica-b") };
        var breaker = Create(cluster);
        breaker.FollowOpen("replica-b#1", TimeSpan.FromSeconds(60), "replica-b");
        _time.Advance(TimeSpan.FromSeconds(60));
        Assert.False((await breaker.TryAcquireAsync()).Acquired);

        cluster.Claim = new ProbeClaim(ProbeVerdict.Won);
        breaker.FollowProbeReleased();

        var (acquired, permit) = await breaker.TryAcquireAsync();
        Assert.True(acquired);
        Assert.True(permit.IsProbe);
    }

    [Fact]
    public async Task ClaimsTheProbeAgainWhenTheOtherReplicasLeaseEnds()
    {
        var cluster = new FakeSync { Claim = new ProbeClaim(ProbeVerdict.ProbingElsewhere, TimeSpan.FromSeconds(30), Replica: "replica-b") };
        var breaker = Create(cluster);
        Fail(breaker); Fail(breaker); Fail(breaker);
        _time.Advance(TimeSpan.FromSeconds(60));
        Assert.False((await breaker.TryAcquireAsync()).Acquired);

        _time.Advance(TimeSpan.FromSeconds(29));
        Assert.False((await breaker.TryAcquireAsync()).Acquired);
        cluster.Claim = new ProbeClaim(ProbeVerdict.Won);
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.True((await breaker.TryAcquireAsync()).Permit.IsProbe);
    }

    [Fact]
    public async Task StaysOpenWhenAnotherReplicaOpenedItAgain()
    {
        var cluster = new FakeSync { Claim = new ProbeClaim(ProbeVerdict.ReopenedElsewhere, TimeSpan.FromSeconds(45), "replica-b#7", "replica-b") };
        var breaker = Create(cluster);
        Fail(breaker); Fail(breaker); Fail(breaker);
        _time.Advance(TimeSpan.FromSeconds(60));

        Assert.False((await breaker.TryAcquireAsync()).Acquired);

        Assert.Equal(CircuitState.Open, breaker.State);
        Assert.Equal(_time.GetUtcNow() + TimeSpan.FromSeconds(45), breaker.OpenUntil);
        Assert.Equal((CircuitState.HalfOpen, CircuitState.Open), _transitions[^1]);
    }

    [Fact]
    public async Task ProbesAloneWhenRedisDoesNotAnswer()
    {
        var breaker = Create(new FakeSync { Claim = new ProbeClaim(ProbeVerdict.Unknown) });
        Fail(breaker); Fail(breaker); Fail(breaker);
        _time.Advance(TimeSpan.FromSeconds(60));

        var (acquired, permit) = await breaker.TryAcquireAsync();

        Assert.True(acquired);
        Assert.True(permit.IsProbe);
        Assert.False((await breaker.TryAcquireAsync()).Acquired); // still one probe on this replica
    }

    [Fact]
    public async Task GivesUpItsClaimWhenItsProbeEndsWithoutAVerdict()
    {
        var cluster = new FakeSync();
        var breaker = Create(cluster);
        Fail(breaker); Fail(breaker); Fail(breaker);
        _time.Advance(TimeSpan.FromSeconds(60));
        var (_, probe) = await breaker.TryAcquireAsync();

        breaker.OnAbandoned(probe);

        Assert.Equal("probe released", cluster.Announced[^1]);
    }

    private CircuitBreaker Create(ICircuitSync cluster) =>
        new("primary", 3, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(60), _time, (_, from, to, _, _) => _transitions.Add((from, to)), cluster);

    /// <summary>Redis as one replica sees it: records the announcements, answers claims as told.</summary>
    private sealed class FakeSync : ICircuitSync
    {
        public List<string> Announced { get; } = [];

        public List<string?> ClaimedWith { get; } = [];

        public ProbeClaim Claim { get; set; } = new(ProbeVerdict.Won);

        public string Opened(string deploymentId, TimeSpan cooldown)
        {
            Announced.Add($"opened for {cooldown.TotalSeconds:0}s");
            return "fake#" + Announced.Count;
        }

        public void Closed(string deploymentId) => Announced.Add("closed");

        public void ProbeAbandoned(string deploymentId) => Announced.Add("probe released");

        public ValueTask<ProbeClaim> ClaimProbeAsync(string deploymentId, string? knownOpenId)
        {
            ClaimedWith.Add(knownOpenId);
            return ValueTask.FromResult(Claim);
        }
    }
}
