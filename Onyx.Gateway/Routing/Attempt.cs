using Onyx.Gateway.Model;
using Onyx.Gateway.Providers;
using Onyx.Gateway.Resilience;

namespace Onyx.Gateway.Routing;

/// <summary>
/// One call to one deployment and everything it holds: the breaker's permit, the deployment's slot
/// (<c>max_parallel_requests</c>), the attempt's timer and cancellation, and a stream's upstream response. Disposing it
/// gives every one of them back on any path — an answer, a failure, the client leaving at any await, an exception nobody
/// foresaw — and the breaker hears exactly one verdict; an attempt disposed without one was abandoned, which frees a
/// half-open breaker's probe for the next call.
/// </summary>
internal sealed class Attempt : IAsyncDisposable
{
    private readonly CircuitBreaker _breaker;
    private readonly CircuitPermit _permit;
    private readonly IDisposable _slot;
    private readonly CancellationTokenSource _linked;
    private IAsyncEnumerator<Providers.StreamChunk>? _upstream;
    private int _judged;
    private int _disposed;

    public Attempt(Deployment deployment, IChatProvider provider, CircuitBreaker breaker, CircuitPermit permit, IDisposable slot,
        AttemptContext context, TimeProvider time, CancellationToken clientAborted)
    {
        Deployment = deployment;
        Provider = provider;
        Context = context;
        _breaker = breaker;
        _permit = permit;
        _slot = slot;
        // Bound to the TimeProvider, so tests drive first-token and attempt limits with a fake clock.
        Timer = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        _linked = CancellationTokenSource.CreateLinkedTokenSource(clientAborted, Timer.Token);
    }

    public Deployment Deployment { get; }

    public IChatProvider Provider { get; }

    public AttemptContext Context { get; }

    /// <summary>The attempt's own deadline: the first-token or attempt limit, then a stream's idle watch.</summary>
    public CancellationTokenSource Timer { get; }

    /// <summary>Cancelled when the client leaves or <see cref="Timer"/> fires.</summary>
    public CancellationToken Token => _linked.Token;

    /// <summary>The upstream stream being read (set once it is opened, so disposal closes it).</summary>
    public IAsyncEnumerator<Providers.StreamChunk> Upstream => _upstream ?? throw new InvalidOperationException("The attempt has no stream.");

    public void Own(IAsyncEnumerator<Providers.StreamChunk> upstream) => _upstream = upstream;

    /// <summary>
    /// Makes the attempt's span the current one for what the caller does next, so the upstream HTTP request's span is
    /// its child. (The span was started where the attempt was opened, in an async method whose current span does not
    /// flow back to its caller.)
    /// </summary>
    public void Enter()
    {
        if (Context.Activity is { } activity)
        {
            System.Diagnostics.Activity.Current = activity;
        }
    }

    /// <summary>The deployment answered (a stream: its first token).</summary>
    public void Succeeded()
    {
        if (Interlocked.Exchange(ref _judged, 1) == 0)
        {
            _breaker.OnSuccess(_permit);
        }
    }

    /// <summary>The attempt failed; the breaker hears <paramref name="verdict"/>.</summary>
    public void Judge(BreakerVerdict verdict, UpstreamException failure)
    {
        if (Interlocked.Exchange(ref _judged, 1) != 0)
        {
            return;
        }
        switch (verdict)
        {
            case BreakerVerdict.Failure:
                _breaker.OnFailure(_permit, failure.Reason);
                break;
            case BreakerVerdict.Trip:
                _breaker.Trip(_permit, failure.Message);
                break;
            case BreakerVerdict.CoolDown when failure.RetryAfter is { } pause:
                _breaker.CoolDown(_permit, pause, $"{failure.Reason} with Retry-After {pause.TotalSeconds:0.###}s");
                break;
            default:
                _breaker.OnAbandoned(_permit);
                break;
        }
    }

    /// <summary>A stream that had already counted as a success broke mid-answer: a failure all the same.</summary>
    public void BrokeMidStream(string reason) => _breaker.OnFailure(default, reason);

    /// <summary>Stops the upstream call now (a hedge's loser); disposal follows once its reader has let go.</summary>
    public void Cancel()
    {
        try
        {
            Timer.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        if (Interlocked.Exchange(ref _judged, 1) == 0)
        {
            _breaker.OnAbandoned(_permit);
        }
        try
        {
            if (_upstream is not null)
            {
                await _upstream.DisposeAsync();
            }
        }
        finally
        {
            _linked.Dispose();
            Timer.Dispose();
            _slot.Dispose();
        }
    }
}
