namespace Onyx.Gateway.Resilience;

internal enum CircuitState
{
    Closed,
    Open,
    HalfOpen,
}

/// <summary>Permission to call a deployment. A probe is the single call let through a half-open breaker.</summary>
internal readonly record struct CircuitPermit(bool IsProbe);

/// <summary>A breaker's change of state; <paramref name="replica"/> names the other replica that caused it (null: this one).</summary>
internal delegate void CircuitTransitionHandler(CircuitBreaker breaker, CircuitState from, CircuitState to, string reason, string? replica);

/// <summary>
/// One deployment's breaker, with LiteLLM's semantics: <c>allowed_fails</c> failures within the failure window
/// open it; while open the deployment gets no traffic for the cooldown; then exactly one probe is let through —
/// its success closes the breaker, its failure re-opens it.
/// </summary>
/// <remarks>
/// Hand-written rather than Polly's circuit breaker: Polly's opens on a failure *ratio* over a sampling window
/// and judges the outcome of a delegate it runs, whereas LiteLLM (and this gateway's config) count failures in a
/// window, and a stream's outcome is only known after the call that started it has returned — at the first token
/// or when the stream breaks. The state machine is small; time comes from <see cref="TimeProvider"/>.
/// <para>
/// With an <see cref="ICircuitSync"/> (the gateway has Redis) the breaker is cluster-wide: its own opens and its
/// probe's verdicts are announced, the other replicas' are followed (<see cref="FollowOpen"/>,
/// <see cref="FollowClose"/>), and a half-open probe is only sent once the replica has claimed it for the whole
/// cluster (<see cref="TryAcquireAsync"/>). Whatever Redis does, the local state machine keeps deciding.
/// </para>
/// </remarks>
internal sealed class CircuitBreaker
{
    private readonly object _gate = new();
    private readonly Queue<long> _failures = new();
    private readonly int _allowedFails;
    private readonly TimeSpan _window;
    private readonly TimeSpan _cooldown;
    private readonly TimeProvider _time;
    private readonly CircuitTransitionHandler? _onTransition;
    private readonly ICircuitSync? _cluster;
    private CircuitState _state = CircuitState.Closed;
    private long _openUntil;
    private bool _probeInFlight;

    // Cluster-wide only. The open this breaker is waiting out (its own or another replica's): Redis knows the
    // latest, and a different one there means the breaker was re-opened elsewhere.
    private string? _openId;

    // Cluster-wide only: half-open, but another replica holds the probe until then (or until its verdict arrives).
    private long _peerProbeUntil;

    public CircuitBreaker(string deploymentId, int allowedFails, TimeSpan window, TimeSpan cooldown, TimeProvider time,
        CircuitTransitionHandler? onTransition = null, ICircuitSync? cluster = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(allowedFails, 1);
        DeploymentId = deploymentId;
        _allowedFails = allowedFails;
        _window = window;
        _cooldown = cooldown;
        _time = time;
        _onTransition = onTransition;
        _cluster = cluster;
    }

    public string DeploymentId { get; }

    /// <summary>The state as a caller would see it now (an open breaker whose cooldown has ended is half-open).</summary>
    public CircuitState State
    {
        get
        {
            lock (_gate)
            {
                return _state == CircuitState.Open && _time.GetTimestamp() >= _openUntil ? CircuitState.HalfOpen : _state;
            }
        }
    }

    /// <summary>When an open breaker lets its probe through; null unless open.</summary>
    public DateTimeOffset? OpenUntil
    {
        get
        {
            lock (_gate)
            {
                if (_state != CircuitState.Open)
                {
                    return null;
                }
                var remaining = _time.GetElapsedTime(_time.GetTimestamp(), _openUntil);
                return _time.GetUtcNow() + (remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero);
            }
        }
    }

    public bool TryAcquire(out CircuitPermit permit)
    {
        lock (_gate)
        {
            permit = default;
            if (_state == CircuitState.Closed)
            {
                return true;
            }
            if (_state == CircuitState.Open)
            {
                if (_time.GetTimestamp() < _openUntil)
                {
                    return false;
                }
                Transition(CircuitState.HalfOpen, "cooldown ended");
            }
            if (_probeInFlight || _time.GetTimestamp() < _peerProbeUntil)
            {
                return false;
            }
            _probeInFlight = true;
            permit = new CircuitPermit(IsProbe: true);
            return true;
        }
    }

    /// <summary>
    /// <see cref="TryAcquire"/>, and when that gives this replica the half-open probe and the breaker is
    /// cluster-wide, the claim of that probe for the whole cluster. Only a probe waits for Redis, and only for the
    /// sync's bound; every other call is decided at once, from memory.
    /// </summary>
    public ValueTask<(bool Acquired, CircuitPermit Permit)> TryAcquireAsync()
    {
        var acquired = TryAcquire(out var permit);
        return acquired && permit.IsProbe && _cluster is not null
            ? ClaimProbeAsync(permit)
            : ValueTask.FromResult((acquired, permit));
    }

    private async ValueTask<(bool Acquired, CircuitPermit Permit)> ClaimProbeAsync(CircuitPermit probe)
    {
        string? openId;
        lock (_gate)
        {
            openId = _openId;
        }
        var claim = await _cluster!.ClaimProbeAsync(DeploymentId, openId);
        lock (_gate)
        {
            if (_state != CircuitState.HalfOpen || !_probeInFlight)
            {
                // Another replica's verdict arrived meanwhile (closed: an ordinary call; re-opened: no call).
                if (claim.Verdict == ProbeVerdict.Won)
                {
                    _cluster.ProbeAbandoned(DeploymentId);
                }
                return (_state == CircuitState.Closed, default);
            }
            switch (claim.Verdict)
            {
                case ProbeVerdict.ProbingElsewhere:
                    _probeInFlight = false;
                    _peerProbeUntil = _time.GetTimestamp() + Ticks(claim.Remaining);
                    return (false, default);
                case ProbeVerdict.ReopenedElsewhere:
                    _probeInFlight = false;
                    FollowOpenLocked(claim.OpenId!, claim.Remaining, claim.Replica!);
                    return (false, default);
                default:
                    return (true, probe);
            }
        }
    }

    public void OnSuccess(CircuitPermit permit)
    {
        lock (_gate)
        {
            if (permit.IsProbe && _state == CircuitState.HalfOpen)
            {
                _probeInFlight = false;
                _failures.Clear();
                _openId = null;
                _peerProbeUntil = 0;
                Transition(CircuitState.Closed, "probe succeeded");
                _cluster?.Closed(DeploymentId);
            }
        }
    }

    public void OnFailure(CircuitPermit permit, string reason)
    {
        lock (_gate)
        {
            if (permit.IsProbe)
            {
                if (_state == CircuitState.HalfOpen)
                {
                    _probeInFlight = false;
                    Open($"probe failed: {reason}");
                }
                return;
            }
            if (_state != CircuitState.Closed)
            {
                return; // A call admitted before the breaker opened; the breaker already knows.
            }
            var now = _time.GetTimestamp();
            _failures.Enqueue(now);
            while (_failures.Count > 0 && _time.GetElapsedTime(_failures.Peek(), now) >= _window)
            {
                _failures.Dequeue();
            }
            if (_failures.Count >= _allowedFails)
            {
                Open($"{_failures.Count} failures within {_window.TotalSeconds:0}s, last: {reason}");
            }
        }
    }

    /// <summary>Opens at once, whatever the count (e.g. the provider rejected the gateway's key).</summary>
    public void Trip(CircuitPermit permit, string reason)
    {
        lock (_gate)
        {
            if (permit.IsProbe)
            {
                _probeInFlight = false;
            }
            if (_state != CircuitState.Open)
            {
                Open(reason);
            }
        }
    }

    /// <summary>
    /// The provider asked for a pause (a 429 or 503 with <c>Retry-After</c>): out of rotation for exactly that long
    /// (capped at <see cref="MaxCoolDown"/>), then one probe — whatever the failure count.
    /// </summary>
    public void CoolDown(CircuitPermit permit, TimeSpan duration, string reason)
    {
        var until = _time.GetTimestamp() + (long)(Math.Clamp(duration.TotalSeconds, 0, MaxCoolDown.TotalSeconds) * _time.TimestampFrequency);
        lock (_gate)
        {
            if (permit.IsProbe)
            {
                _probeInFlight = false;
            }
            if (_state == CircuitState.Open && _openUntil >= until)
            {
                return;
            }
            _failures.Clear();
            _peerProbeUntil = 0;
            _openUntil = until;
            Transition(CircuitState.Open, reason);
            // Every replica rests the deployment as long as the provider asked.
            _openId = _cluster?.Opened(DeploymentId, TimeSpan.FromSeconds(Math.Clamp(duration.TotalSeconds, 0, MaxCoolDown.TotalSeconds)));
        }
    }

    /// <summary>The longest a provider's Retry-After keeps a deployment out.</summary>
    public static readonly TimeSpan MaxCoolDown = TimeSpan.FromMinutes(10);

    /// <summary>The call ended with no verdict on the deployment (the client went away, or its request was bad).</summary>
    public void OnAbandoned(CircuitPermit permit)
    {
        if (!permit.IsProbe)
        {
            return;
        }
        lock (_gate)
        {
            _probeInFlight = false;
            _cluster?.ProbeAbandoned(DeploymentId);
        }
    }

    /// <summary>Another replica opened this deployment's breaker, for <paramref name="remaining"/> from now.</summary>
    public void FollowOpen(string openId, TimeSpan remaining, string replica)
    {
        lock (_gate)
        {
            FollowOpenLocked(openId, remaining, replica);
        }
    }

    /// <summary>Another replica's probe succeeded: the deployment takes traffic again.</summary>
    /// <remarks>
    /// Followed whatever this replica thought: a deployment that still fails here opens again with this replica's
    /// own failures, and one replica's success is the verdict the cluster waited for.
    /// </remarks>
    public void FollowClose(string replica)
    {
        lock (_gate)
        {
            if (_state == CircuitState.Closed)
            {
                return;
            }
            _failures.Clear();
            _probeInFlight = false;
            _peerProbeUntil = 0;
            _openId = null;
            Transition(CircuitState.Closed, $"probe succeeded on replica {replica}", replica);
        }
    }

    /// <summary>Another replica's probe ended with no verdict: the next call here may claim the probe.</summary>
    public void FollowProbeReleased()
    {
        lock (_gate)
        {
            _peerProbeUntil = 0;
        }
    }

    private void FollowOpenLocked(string openId, TimeSpan remaining, string replica)
    {
        var until = _time.GetTimestamp() + Ticks(remaining);
        if (_state == CircuitState.Open && _openUntil >= until)
        {
            return; // Already open at least that long (e.g. opened here too, announced just after).
        }
        _failures.Clear();
        _probeInFlight = false;
        _peerProbeUntil = 0;
        _openId = openId;
        _openUntil = until;
        Transition(CircuitState.Open, $"opened on replica {replica}", replica);
    }

    private void Open(string reason)
    {
        _failures.Clear();
        _peerProbeUntil = 0;
        _openUntil = _time.GetTimestamp() + Ticks(_cooldown);
        Transition(CircuitState.Open, reason);
        _openId = _cluster?.Opened(DeploymentId, _cooldown);
    }

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);

    private void Transition(CircuitState to, string reason, string? replica = null)
    {
        var from = _state;
        _state = to;
        if (from != to)
        {
            _onTransition?.Invoke(this, from, to, reason, replica);
        }
    }
}
