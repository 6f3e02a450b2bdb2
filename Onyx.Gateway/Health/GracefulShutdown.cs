using Microsoft.Extensions.Options;

namespace Onyx.Gateway.Health;

/// <summary>
/// The drain between SIGTERM and exit. What the host and Kestrel already do is left to them: SIGTERM fires
/// <see cref="IHostApplicationLifetime.ApplicationStopping"/>, then the host stops the server, which stops listening,
/// closes idle keep-alive connections and waits for the requests in flight until <see cref="HostOptions.ShutdownTimeout"/>
/// (set to the drain limit plus <see cref="ExitGrace"/>), then aborts whatever is left. This class adds what they
/// do not: from ApplicationStopping on it refuses new requests (a keep-alive connection can carry one until the
/// server's stop runs), tells <c>/health</c> the replica is draining, ends the requests still running at the drain
/// limit in a way a client can read (instead of Kestrel's silent abort), and logs the drain's start and end.
/// </summary>
internal sealed partial class GracefulShutdown : IHostedService, IDisposable
{
    /// <summary>
    /// How long the host waits past the drain limit: time for the requests ended at the limit to send their last
    /// bytes, and for the services that stop after the server (the call log's flush among them).
    /// </summary>
    public static readonly TimeSpan ExitGrace = TimeSpan.FromSeconds(5);

    private readonly Lock _gate = new();
    private readonly IHostApplicationLifetime _lifetime;
    private readonly TimeProvider _time;
    private readonly ILogger<GracefulShutdown> _logger;
    private readonly TimeSpan _drainTimeout;
    private readonly CancellationTokenSource _drainLimit;
    private CancellationTokenRegistration _onStopping;
    private CancellationTokenRegistration _onStopped;
    private int _inFlight;
    private int _finished;
    private int _ended;
    private bool _draining;
    private bool _reported;
    private long _drainStarted;

    public GracefulShutdown(IHostApplicationLifetime lifetime, IOptions<ShutdownOptions> options, TimeProvider time, ILogger<GracefulShutdown> logger)
    {
        _lifetime = lifetime;
        _time = time;
        _logger = logger;
        _drainTimeout = options.Value.DrainTimeout;
        // Bound to the TimeProvider, so tests reach the drain limit with a fake clock.
        _drainLimit = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        DrainLimitReached = _drainLimit.Token;
    }

    /// <summary>True from ApplicationStopping on.</summary>
    public bool IsDraining => Volatile.Read(ref _draining);

    /// <summary>Cancelled once the drain has lasted <see cref="ShutdownOptions.DrainTimeout"/>.</summary>
    public CancellationToken DrainLimitReached { get; }

    /// <summary>Requests being served (health probes are not counted).</summary>
    public int InFlight
    {
        get
        {
            lock (_gate)
            {
                return _inFlight;
            }
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _onStopping = _lifetime.ApplicationStopping.Register(BeginDrain);
        _onStopped = _lifetime.ApplicationStopped.Register(() => Report(force: true));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Counts a request in, unless the drain has begun: then it must be refused.</summary>
    public bool TryEnter()
    {
        lock (_gate)
        {
            if (_draining)
            {
                return false;
            }
            _inFlight++;
            return true;
        }
    }

    /// <summary>Counts a request out; during the drain, as finished or as ended at the drain limit.</summary>
    public void Exit()
    {
        bool last;
        lock (_gate)
        {
            _inFlight--;
            if (!_draining)
            {
                return;
            }
            if (DrainLimitReached.IsCancellationRequested)
            {
                _ended++;
            }
            else
            {
                _finished++;
            }
            last = _inFlight == 0;
        }
        if (last)
        {
            Report(force: false);
        }
    }

    private void BeginDrain()
    {
        int inFlight;
        lock (_gate)
        {
            _draining = true;
            _drainStarted = _time.GetTimestamp();
            inFlight = _inFlight;
        }
        Log.DrainStarted(_logger, inFlight, _drainTimeout);
        _drainLimit.CancelAfter(_drainTimeout);
        if (inFlight == 0)
        {
            Report(force: false);
        }
    }

    /// <summary>Logs the end of the drain once: when the last request is out, or at exit with those still running.</summary>
    private void Report(bool force)
    {
        int finished, ended, unfinished;
        long started;
        lock (_gate)
        {
            if (_reported || !_draining || (_inFlight > 0 && !force))
            {
                return;
            }
            _reported = true;
            (finished, ended, unfinished, started) = (_finished, _ended, _inFlight, _drainStarted);
        }
        Log.DrainEnded(_logger, Math.Round(_time.GetElapsedTime(started).TotalMilliseconds), finished, ended, unfinished);
    }

    public void Dispose()
    {
        _onStopping.Dispose();
        _onStopped.Dispose();
        _drainLimit.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(7001, LogLevel.Information,
            "Shutting down: /health reports draining and new requests are refused; requests in flight: {InFlight}, drain limit: {DrainTimeout}")]
        public static partial void DrainStarted(ILogger logger, int inFlight, TimeSpan drainTimeout);

        [LoggerMessage(7002, LogLevel.Information,
            "Drain ended after {ElapsedMs} ms: finished {Finished}, ended at the drain limit {Ended}, still running at exit {Unfinished}")]
        public static partial void DrainEnded(ILogger logger, double elapsedMs, int finished, int ended, int unfinished);
    }
}
