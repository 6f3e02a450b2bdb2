using Microsoft.Extensions.Options;
using Onyx.Gateway.Audit;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;
using Onyx.Gateway.Resilience;
using Onyx.Gateway.Spend;
using Onyx.Gateway.Telemetry;

namespace Onyx.Gateway.Routing;

/// <summary>
/// Serves a chat request from the first deployment of its chain that can: skips unavailable deployments and
/// open breakers, fails over on any upstream failure before the first byte reaches the client, and returns
/// the client's own mistakes (an upstream 400) as they are, after one attempt.
/// </summary>
internal sealed class ChatCompletionRouter(
    RoutingTable routing,
    IEnumerable<IChatProvider> providers,
    CircuitBreakerRegistry breakers,
    DeploymentSlots slots,
    IOptions<OnyxOptions> onyxOptions,
    IOptions<LiteLlmOptions> liteLlmOptions,
    TimeProvider time,
    CallLog callLog,
    GatewayMetrics metrics,
    TokenEstimator estimator,
    SpendTracker spend,
    AuditWriter audit)
{
    /// <summary>LiteLLM's default request timeout is far longer; ten minutes bounds a non-streaming attempt.</summary>
    private static readonly TimeSpan DefaultAttemptTimeout = TimeSpan.FromMinutes(10);

    private readonly Dictionary<ProviderProtocol, IChatProvider> _providers = providers.ToDictionary(p => p.Protocol);
    private readonly RoutingOptions _options = onyxOptions.Value.Routing;
    private readonly int _numRetries = liteLlmOptions.Value.RouterSettings.NumRetries ?? 0;
    private readonly TimeSpan _attemptTimeout = liteLlmOptions.Value.RouterSettings.Timeout is { } seconds
        ? TimeSpan.FromSeconds(seconds)
        : DefaultAttemptTimeout;

    public async Task<RoutedCompletion> CompleteAsync(ChatRequest request, string requestId, CallOwner owner, CancellationToken clientAborted)
    {
        var call = Track(request, requestId, owner);
        var (route, result, context) = await RouteAsync(call, clientAborted, async (deployment, provider, context, timer, token) =>
        {
            timer.CancelAfter(_attemptTimeout);
            return await provider.CompleteAsync(deployment, request, context, token);
        }, "no answer within the attempt timeout");
        call.Succeeded(route, result.Usage, context, result.CompletionText);
        return new RoutedCompletion(route, result.Body);
    }

    /// <summary>
    /// Starts a stream: returns once a deployment has produced its first token (or a complete empty answer), so
    /// the caller can still send an ordinary 200 whichever deployment it was.
    /// </summary>
    public async Task<RoutedStream> StreamAsync(ChatRequest request, string requestId, CallOwner owner, CancellationToken clientAborted)
    {
        var call = Track(request, requestId, owner);
        var tried = new HashSet<Deployment>();
        var hedged = routing.TryGetChain(request.Model, out var chain) && chain[0].HedgeAfter is { } after
            ? await HedgeAsync(call, chain, after, tried, clientAborted)
            : null;
        var (route, start, context) = hedged ?? await RouteAsync(call, clientAborted, (deployment, provider, context, timer, token) =>
            StartStreamAsync(deployment, provider, request, context, timer, token, prefix: null),
            $"no first token within {_options.FirstTokenTimeout.TotalSeconds:0.###}s", tried);
        call.FirstToken();
        return new RoutedStream(route, start, context, call, breakers, _options.StreamIdleTimeout, time, metrics,
            chain[0].ResumeStreams ? (partial, failed, aborted) => ContinueAsync(call, failed, partial, aborted) : null);
    }

    /// <summary>
    /// Continues an answer that broke after <paramref name="partial"/> reached the client, on the deployments that
    /// follow <paramref name="failed"/> in the chain: each is asked to continue the partial answer its own way
    /// (<see cref="ContinuationStyle"/>). One that refuses a prefilled answer (a 4xx) is asked for the answer anew,
    /// which is used only from the point where it has reproduced <paramref name="partial"/> exactly.
    /// </summary>
    /// <exception cref="UpstreamException">No deployment could continue the answer.</exception>
    private async Task<ResumedStream> ContinueAsync(CallTracker call, Deployment failed, string partial, CancellationToken clientAborted)
    {
        routing.TryGetChain(call.Request.Model, out var chain);
        var tried = new List<string>();
        foreach (var deployment in chain.SkipWhile(d => d != failed).Skip(1))
        {
            if (deployment.UnavailableReason is { } unavailable)
            {
                tried.Add($"{deployment.Id} (unavailable: {unavailable})");
                continue;
            }
            var breaker = breakers.For(deployment);
            if (await breaker.TryAcquireAsync() is not (true, var permit))
            {
                tried.Add($"{deployment.Id} (circuit open)");
                continue;
            }
            if (await slots.AcquireAsync(deployment, clientAborted) is not { } slot)
            {
                breaker.OnAbandoned(permit);
                tried.Add($"{deployment.Id} (overloaded)");
                continue;
            }
            var provider = _providers[deployment.Provider.Protocol];
            var continuation = call.Request.WithPrefill(partial, deployment.Continuation == ContinuationStyle.PrefixFlag, null);
            var attempts = new (ChatRequest Request, string? Prefix)[] { (continuation, null), (call.Request, partial) };
            foreach (var (request, prefix) in attempts)
            {
                var context = call.AttemptStarted(deployment);
                var timer = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
                var linked = CancellationTokenSource.CreateLinkedTokenSource(clientAborted, timer.Token);
                try
                {
                    var head = await StartStreamAsync(deployment, provider, request, context, timer, linked.Token, prefix);
                    head.Adopt(timer, linked, slot);
                    breaker.OnSuccess(permit);
                    var route = new RouteInfo(call.RequestId, call.Request.Model, deployment, Fallback: true, call.Attempts);
                    return new ResumedStream(route, head, context, prefix?.Length ?? 0);
                }
                catch (Exception ex) when (ex is OperationCanceledException or UpstreamException)
                {
                    linked.Dispose();
                    timer.Dispose();
                    if (clientAborted.IsCancellationRequested)
                    {
                        slot.Dispose();
                        breaker.OnAbandoned(permit);
                        GatewayTracing.EndAttempt(context, "client_closed");
                        throw new OperationCanceledException(clientAborted);
                    }
                    var failure = ex as UpstreamException ?? new UpstreamException(FailureKind.Timeout,
                        $"{deployment.Id}: no first token of the continuation within {_options.FirstTokenTimeout.TotalSeconds:0.###}s");
                    call.AttemptFailed(deployment, failure, context);
                    if (failure.IsClientError && prefix is null)
                    {
                        // It refuses the prefilled answer: ask it for the answer anew, to splice.
                        continue;
                    }
                    slot.Dispose();
                    breaker.OnFailure(permit, failure.Reason);
                    tried.Add(failure.Message);
                    break;
                }
            }
        }
        throw new UpstreamException(FailureKind.StreamBroken, tried.Count == 0
            ? "no other deployment could continue the answer"
            : $"no other deployment could continue the answer: {string.Join("; ", tried)}");
    }

    /// <summary>
    /// Opens a stream and reads it up to its first token (or a complete empty answer). With <paramref name="prefix"/>,
    /// only what follows that text is kept (see <see cref="PrefixSplice"/>); reproducing it counts as progress.
    /// </summary>
    private async Task<StreamHead> StartStreamAsync(Deployment deployment, IChatProvider provider, ChatRequest request, AttemptContext context,
        CancellationTokenSource timer, CancellationToken token, string? prefix)
    {
        timer.CancelAfter(_options.FirstTokenTimeout);
        var stream = provider.StreamAsync(deployment, request, context, token);
        if (prefix is not null)
        {
            stream = PrefixSplice.AfterPrefix(stream, prefix, deployment, token);
        }
        var chunks = stream.GetAsyncEnumerator(token);
        var head = new List<StreamChunk>(2);
        try
        {
            var ended = false;
            while (true)
            {
                if (!await chunks.MoveNextAsync())
                {
                    ended = true;
                    break;
                }
                if (chunks.Current.Json.IsEmpty)
                {
                    timer.CancelAfter(_options.FirstTokenTimeout);
                    continue;
                }
                head.Add(chunks.Current);
                if (chunks.Current.Info.HasContent || chunks.Current.Info.HasFinishReason)
                {
                    break;
                }
            }
            // From the first token on, the idle limit applies: re-arm now, not when the reader next waits. Otherwise
            // the first-token timer, still running, could fire in the moment between this head reaching the client and
            // the reader re-arming it, and a healthy stream (one whose first token came just in time) would be cut as
            // stalled.
            timer.CancelAfter(_options.StreamIdleTimeout);
            return new StreamHead(chunks, head, ended);
        }
        catch
        {
            await chunks.DisposeAsync();
            throw;
        }
    }

    private CallTracker Track(ChatRequest request, string requestId, CallOwner owner) =>
        new(request, requestId, owner, time, callLog, metrics, estimator, spend, audit);

    private delegate Task<T> Attempt<T>(Deployment deployment, IChatProvider provider, AttemptContext context, CancellationTokenSource timer, CancellationToken token);

    private async Task<(RouteInfo Route, T Result, AttemptContext Context)> RouteAsync<T>(
        CallTracker call, CancellationToken clientAborted, Attempt<T> attempt, string timeoutReason, IReadOnlySet<Deployment>? raced = null) where T : class
    {
        var alias = call.Request.Model;
        if (!routing.TryGetChain(alias, out var chain))
        {
            var error = new OpenAiError($"The model '{alias}' does not exist. GET /v1/models lists the models this gateway serves.",
                OpenAiErrorTypes.InvalidRequest, "model", "model_not_found");
            call.Failed(null, false, StatusCodes.Status404NotFound, error.Type, error.Message);
            throw new RoutingException(StatusCodes.Status404NotFound, error);
        }

        UpstreamException? lastFailure = null;
        Deployment? lastTried = null;
        var overloaded = false;
        foreach (var deployment in Order(chain, alias))
        {
            if (raced?.Contains(deployment) == true)
            {
                // Already raced by hedging.
                continue;
            }
            if (deployment.UnavailableReason is { } unavailable)
            {
                call.Skipped(deployment, $"unavailable: {unavailable}");
                continue;
            }
            var breaker = breakers.For(deployment);
            for (var retry = 0; ; retry++)
            {
                if (await breaker.TryAcquireAsync() is not (true, var permit))
                {
                    call.Skipped(deployment, "circuit open");
                    break;
                }
                if (await slots.AcquireAsync(deployment, clientAborted) is not { } slot)
                {
                    breaker.OnAbandoned(permit);
                    call.Skipped(deployment, "overloaded: max_parallel_requests reached and its queue full");
                    overloaded = true;
                    break;
                }

                lastTried = deployment;
                var context = call.AttemptStarted(deployment);
                // The timer is bound to the TimeProvider, so tests drive first-token and attempt timeouts with a fake clock.
                var timer = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
                var linked = CancellationTokenSource.CreateLinkedTokenSource(clientAborted, timer.Token);
                try
                {
                    var result = await attempt(deployment, _providers[deployment.Provider.Protocol], context, timer, linked.Token);
                    var route = new RouteInfo(call.RequestId, alias, deployment, deployment != chain[0], call.Attempts);
                    if (result is StreamHead head)
                    {
                        // The stream keeps both sources (the timer becomes its idle timer) and its slot.
                        head.Adopt(timer, linked, slot);
                    }
                    else
                    {
                        linked.Dispose();
                        timer.Dispose();
                        slot.Dispose();
                    }
                    breaker.OnSuccess(permit);
                    return (route, result, context);
                }
                catch (Exception ex) when (ex is OperationCanceledException or UpstreamException)
                {
                    linked.Dispose();
                    timer.Dispose();
                    slot.Dispose();
                    if (clientAborted.IsCancellationRequested)
                    {
                        breaker.OnAbandoned(permit);
                        call.Failed(deployment, deployment != chain[0], StatusCodes.Status499ClientClosedRequest, "client_closed_request", "The client closed the connection.", context: context);
                        throw new OperationCanceledException(clientAborted);
                    }
                    var failure = Judge(call, chain, deployment, breaker, permit, context, ex, timeoutReason);
                    lastFailure = failure;
                    if (RetryDelay(failure, retry, call.Elapsed) is not { } delay)
                    {
                        break;
                    }
                    await Task.Delay(delay, time, clientAborted);
                }
            }
        }

        var tried = string.Join("; ", call.Tried);
        if (lastFailure is null && call.Attempts == 0)
        {
            var error = new OpenAiError($"No deployment of '{alias}' is available right now: {tried}.",
                OpenAiErrorTypes.ServiceUnavailable, null, "no_deployment_available");
            call.Failed(null, false, StatusCodes.Status503ServiceUnavailable, error.Type, error.Message);
            throw new RoutingException(StatusCodes.Status503ServiceUnavailable, error, RetryAfter() ?? (overloaded ? TimeSpan.FromSeconds(1) : null));
        }
        // Every provider is down for this request: a 503 (the service is unavailable, come back) rather than a 502,
        // which clients read as one bad response worth retrying at once.
        var failed = new OpenAiError($"Every deployment of '{alias}' failed: {tried}.", OpenAiErrorTypes.ServiceUnavailable, null, "all_deployments_failed");
        call.Failed(lastTried, lastTried is not null && lastTried != chain[0], StatusCodes.Status503ServiceUnavailable, failed.Type, failed.Message);
        throw new RoutingException(StatusCodes.Status503ServiceUnavailable, failed, RetryAfter() ?? TimeSpan.FromSeconds(1));
    }

    /// <summary>
    /// Settles a failed attempt: the client's own mistake (an upstream 4xx about the request) ends the routing with
    /// that answer; otherwise the deployment's breaker hears of it — a failure, a trip (the gateway's key was
    /// refused) or a rest (the provider's Retry-After) — and the failure is returned for failover.
    /// </summary>
    private static UpstreamException Judge(CallTracker call, Deployment[] chain, Deployment deployment, CircuitBreaker breaker, CircuitPermit permit,
        AttemptContext context, Exception ex, string timeoutReason)
    {
        var failure = ex as UpstreamException ?? new UpstreamException(FailureKind.Timeout, $"{deployment.Id}: {timeoutReason}");
        if (failure.IsClientError)
        {
            // The request itself is at fault: another deployment would refuse it too.
            breaker.OnAbandoned(permit);
            var status = failure.StatusCode ?? StatusCodes.Status400BadRequest;
            var error = new OpenAiError(failure.Message, OpenAiErrorTypes.InvalidRequest, null, "upstream_rejected_request");
            call.Failed(deployment, deployment != chain[0], status, error.Type, error.Message, context: context);
            throw new RoutingException(status, error);
        }
        if (failure.Kind == FailureKind.Auth)
        {
            breaker.Trip(permit, failure.Message);
        }
        else if (failure.RetryAfter is { } pause && failure.StatusCode is StatusCodes.Status429TooManyRequests or StatusCodes.Status503ServiceUnavailable)
        {
            // The provider said when to come back: the deployment rests exactly that long. It is the provider's
            // limit, not the client's: the client is served by the next deployment.
            breaker.CoolDown(permit, pause, $"{failure.Reason} with Retry-After {pause.TotalSeconds:0.###}s");
        }
        else
        {
            breaker.OnFailure(permit, failure.Reason);
        }
        call.AttemptFailed(deployment, failure, context);
        return failure;
    }

    /// <summary>One stream attempt in flight, for hedging: its deployment, permit, timers and outcome.</summary>
    private sealed record Launched(Deployment Deployment, CircuitBreaker Breaker, CircuitPermit Permit, AttemptContext Context,
        CancellationTokenSource Timer, CancellationTokenSource Linked, Task<StreamHead> Head, IDisposable Slot);

    /// <summary>
    /// <c>hedge_after_ms</c>: starts the chain's first deployment and, if it has produced no token after
    /// <paramref name="after"/>, the next one beside it; the first to produce a token serves the answer and the
    /// other is cancelled at once. Returns null (with <paramref name="tried"/> filled) when neither served, so
    /// ordinary failover goes on with the rest of the chain.
    /// </summary>
    private async Task<(RouteInfo Route, StreamHead Head, AttemptContext Context)?> HedgeAsync(
        CallTracker call, Deployment[] chain, TimeSpan after, HashSet<Deployment> tried, CancellationToken clientAborted)
    {
        var timeoutReason = $"no first token within {_options.FirstTokenTimeout.TotalSeconds:0.###}s";
        var candidates = Order(chain, call.Request.Model).Where(d => d.IsAvailable).ToList();
        if (candidates.Count < 2 || await LaunchAsync(call, candidates[0], clientAborted) is not { } first)
        {
            return null;
        }
        tried.Add(first.Deployment);
        using (var hedgeTimer = new CancellationTokenSource(after, time))
        {
            await Task.WhenAny(first.Head, Task.Delay(Timeout.Infinite, hedgeTimer.Token)).WaitAsync(clientAborted).ConfigureAwait(false);
        }
        Launched? second = null;
        if (!first.Head.IsCompleted)
        {
            second = await LaunchAsync(call, candidates[1], clientAborted);
            if (second is not null)
            {
                tried.Add(second.Deployment);
            }
        }
        var running = second is null ? new List<Launched> { first } : [first, second];
        while (running.Count > 0)
        {
            var done = await Task.WhenAny(running.Select(r => (Task)r.Head));
            var settled = running.Single(r => r.Head == done);
            running.Remove(settled);
            if (settled.Head.IsCompletedSuccessfully)
            {
                foreach (var loser in running)
                {
                    Abandon(loser);
                }
                var head = settled.Head.Result;
                head.Adopt(settled.Timer, settled.Linked, settled.Slot);
                settled.Breaker.OnSuccess(settled.Permit);
                return (new RouteInfo(call.RequestId, call.Request.Model, settled.Deployment, settled.Deployment != chain[0], call.Attempts), head, settled.Context);
            }
            settled.Linked.Dispose();
            settled.Timer.Dispose();
            settled.Slot.Dispose();
            if (clientAborted.IsCancellationRequested)
            {
                settled.Breaker.OnAbandoned(settled.Permit);
                foreach (var other in running)
                {
                    Abandon(other);
                }
                call.Failed(settled.Deployment, settled.Deployment != chain[0], StatusCodes.Status499ClientClosedRequest, "client_closed_request", "The client closed the connection.", context: settled.Context);
                throw new OperationCanceledException(clientAborted);
            }
            try
            {
                Judge(call, chain, settled.Deployment, settled.Breaker, settled.Permit, settled.Context, settled.Head.Exception!.InnerException!, timeoutReason);
            }
            catch (RoutingException)
            {
                foreach (var other in running)
                {
                    Abandon(other);
                }
                throw;
            }
        }
        return null;
    }

    private async Task<Launched?> LaunchAsync(CallTracker call, Deployment deployment, CancellationToken clientAborted)
    {
        var breaker = breakers.For(deployment);
        if (await breaker.TryAcquireAsync() is not (true, var permit))
        {
            call.Skipped(deployment, "circuit open");
            return null;
        }
        if (await slots.AcquireAsync(deployment, clientAborted) is not { } slot)
        {
            breaker.OnAbandoned(permit);
            call.Skipped(deployment, "overloaded");
            return null;
        }
        var context = call.AttemptStarted(deployment);
        var timer = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        var linked = CancellationTokenSource.CreateLinkedTokenSource(clientAborted, timer.Token);
        var head = StartStreamAsync(deployment, _providers[deployment.Provider.Protocol], call.Request, context, timer, linked.Token, prefix: null);
        return new Launched(deployment, breaker, permit, context, timer, linked, head, slot);
    }

    /// <summary>The hedge's loser: cancelled at once; no verdict on its deployment.</summary>
    private static void Abandon(Launched loser)
    {
        loser.Timer.Cancel();
        loser.Breaker.OnAbandoned(loser.Permit);
        GatewayTracing.EndAttempt(loser.Context, "abandoned");
        _ = loser.Head.ContinueWith(async t =>
        {
            if (t.IsCompletedSuccessfully)
            {
                await t.Result.Rest.DisposeAsync();
            }
            loser.Linked.Dispose();
            loser.Timer.Dispose();
            loser.Slot.Dispose();
        }, TaskScheduler.Default);
    }

    /// <summary>
    /// <c>num_retries</c>: a failure worth retrying on the same deployment (a connect error, a 5xx or 408 without
    /// Retry-After) is retried after a jittered exponential backoff — but only while the retry can start within
    /// <see cref="RoutingOptions.RetryDeadline"/> of the request's start, so retries never push failover past it.
    /// </summary>
    private TimeSpan? RetryDelay(UpstreamException failure, int retry, TimeSpan elapsed)
    {
        var retryable = failure.RetryAfter is null && (failure.Kind == FailureKind.Connect
            || failure.StatusCode is StatusCodes.Status408RequestTimeout or >= 500);
        if (!retryable || retry >= _numRetries)
        {
            return null;
        }
        // Full jitter: a random wait up to 100 ms, 200 ms, 400 ms, … so replicas retrying together spread out.
        var ceiling = TimeSpan.FromMilliseconds(100 * Math.Pow(2, retry));
        var delay = ceiling * Random.Shared.NextDouble();
        return elapsed + delay < _options.RetryDeadline ? delay : null;
    }

    private IEnumerable<Deployment> Order(Deployment[] chain, string alias)
    {
        if (!routing.ShuffleWithinAlias)
        {
            return chain;
        }
        var own = chain.Where(d => d.Alias == alias).ToArray();
        Random.Shared.Shuffle(own);
        return own.Concat(chain.Where(d => d.Alias != alias));
    }

    /// <summary>When the soonest open breaker of any deployment lets a probe through.</summary>
    private TimeSpan? RetryAfter()
    {
        var soonest = breakers.All.Select(b => b.OpenUntil).Where(t => t is not null).Min();
        return soonest is { } until ? until - time.GetUtcNow() : null;
    }
}
