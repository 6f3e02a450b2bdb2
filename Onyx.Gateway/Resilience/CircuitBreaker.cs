namespace Onyx.Gateway.Resilience;

internal enum CircuitState
{
    Closed,
    Open,
    HalfOpen,
}

/// <summary>Permission to call a deployment. A probe is the single call let through a half-open breaker.</summary>
internal readonly record struct CircuitPermit(bool IsProbe);

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
/// </remarks>
internal sealed class CircuitBreaker
{
    private readonly object _gate = new();
    private readonly Queue<long> _failures = new();
    private readonly int _allowedFails;
    private readonly TimeSpan _window;
    private readonly TimeSpan _cooldown;
    private readonly TimeProvider _time;
    private readonly Action<CircuitBreaker, CircuitState, CircuitState, string>? _onTransition;
    private CircuitState _state = CircuitState.Closed;
    private long _openUntil;
    private bool _probeInFlight;

    public CircuitBreaker(string deploymentId, int allowedFails, TimeSpan window, TimeSpan cooldown, TimeProvider time,
        Action<CircuitBreaker, CircuitState, CircuitState, string>? onTransition = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(allowedFails, 1);
        DeploymentId = deploymentId;
        _allowedFails = allowedFails;
        _window = window;
        _cooldown = cooldown;
        _time = time;
        _onTransition = onTransition;
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
            if (_probeInFlight)
            {
                return false;
            }
            _probeInFlight = true;
            permit = new CircuitPermit(IsProbe: true);
            return true;
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
                Transition(CircuitState.Closed, "probe succeeded");
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
            _openUntil = until;
            Transition(CircuitState.Open, reason);
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
        }
    }

    private void Open(string reason)
    {
        _failures.Clear();
        _openUntil = _time.GetTimestamp() + (long)(_cooldown.TotalSeconds * _time.TimestampFrequency);
        Transition(CircuitState.Open, reason);
    }

    private void Transition(CircuitState to, string reason)
    {
        var from = _state;
        _state = to;
        if (from != to)
        {
            _onTransition?.Invoke(this, from, to, reason);
        }
    }
}
