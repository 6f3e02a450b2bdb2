using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;
using Onyx.Gateway.Resilience;

namespace Onyx.Gateway.Routing;

/// <summary>
/// Serves a request from the first deployment of its alias's chain that can: skips deployments that are unavailable,
/// cannot serve the request faithfully, have an open breaker or no free slot; after a failed attempt, does what the
/// <see cref="FailurePolicy"/> says — the same deployment again, the next one, the alias's special fallbacks, or the
/// client gets the failure. Nothing has reached the client while this runs, so any deployment may answer whole.
/// Hand-written rather than a Polly pipeline (retry + fallback + hedging): Polly's strategies retry one callback and
/// judge one outcome per execution, while here each step picks a different deployment, may skip it before any call
/// (breaker, slot, rpm/tpm, what its adapter can serve), and a stream's outcome changes once its first token is out:
/// from then on it can no longer be retried, only resumed (<see cref="StreamResumer"/>).
/// </summary>
internal sealed partial class Failover(RoutingTable routing, AttemptOpener opener, FailurePolicy policy, CircuitBreakerRegistry breakers,
    TimeProvider time, ILogger<Failover> logger)
{
    public delegate Task<T> AttemptBody<T>(Attempt attempt);

    /// <param name="raced">Deployments already tried by hedging, not tried again.</param>
    /// <param name="plan">The deployments to try instead of the chain (hedging found the alias's special fallbacks apply).</param>
    /// <exception cref="RoutingException">No deployment answered; its error is what the client gets.</exception>
    /// <exception cref="OperationCanceledException">The client left.</exception>
    public async Task<Routed<T>> RunAsync<T>(CallTracker call, AttemptBody<T> body, string timeoutReason, CancellationToken clientAborted,
        IReadOnlySet<Deployment>? raced = null, Deployment[]? plan = null)
    {
        var alias = call.Request.Model;
        if (!routing.TryGetChain(alias, out var chain))
        {
            var error = new OpenAiError($"The model '{alias}' does not exist. GET /v1/models lists the models this gateway serves.",
                OpenAiErrorTypes.InvalidRequest, "model", "model_not_found");
            call.Failed(null, false, StatusCodes.Status404NotFound, error.Type, error.Message);
            throw new RoutingException(StatusCodes.Status404NotFound, error);
        }

        var queue = new Queue<Deployment>(plan ?? Order(chain, alias));
        var done = new HashSet<Deployment>(raced ?? (IEnumerable<Deployment>)[]);
        UpstreamException? lastFailure = null;
        Deployment? lastTried = null;
        var overloaded = false;
        var onlyContextWindow = true;
        var onlyUnservable = true;
        var onlyContextSkips = true;
        while (queue.TryDequeue(out var deployment))
        {
            if (!done.Add(deployment))
            {
                continue;
            }
            var history = new AttemptHistory();
            while (true)
            {
                var (opened, skip) = await opener.OpenAsync(call, deployment, clientAborted);
                if (opened is not { } attempt)
                {
                    call.Skipped(deployment, skip.Reason);
                    overloaded |= skip.Overloaded;
                    onlyUnservable &= skip.Unservable || skip.ContextWindow;
                    onlyContextSkips &= skip.ContextWindow;
                    if (skip.ContextWindow && routing.ContextWindowFallbacks(alias) is { } longer)
                    {
                        // As LiteLLM's pre-call checks: the alias's own deployments the prompt may fit, then its
                        // context_window_fallbacks instead of its ordinary fallbacks.
                        queue = new Queue<Deployment>(queue.Where(d => d.Alias == alias).Concat(longer));
                    }
                    break;
                }
                lastTried = deployment;
                history.Started(time.GetTimestamp());
                Decision decision;
                try
                {
                    var result = await body(attempt);
                    attempt.Succeeded();
                    opened = null;
                    return new Routed<T>(new RouteInfo(call.RequestId, alias, deployment, deployment != chain[0], call.Attempts), result, attempt);
                }
                catch (Exception) when (clientAborted.IsCancellationRequested)
                {
                    // Everything is given back before the call's record says it ended.
                    await attempt.DisposeAsync();
                    call.Failed(deployment, deployment != chain[0], StatusCodes.Status499ClientClosedRequest, "client_closed_request",
                        "The client closed the connection.", context: attempt.Context);
                    throw new OperationCanceledException(clientAborted);
                }
                catch (Exception ex)
                {
                    if (ex is not (UpstreamException or OperationCanceledException))
                    {
                        Log.UnexpectedFailure(logger, deployment.Id, ex);
                    }
                    var failure = AttemptFailures.Describe(ex, deployment, timeoutReason);
                    decision = policy.Decide(failure, attempt.Context.HeadersReceived, history, call.Started, routing.ContentPolicyFallbacks(alias) is not null);
                    attempt.Judge(decision.Breaker, failure);
                    if (decision.Next == NextStep.Stop)
                    {
                        throw Refused(call, deployment, deployment != chain[0], failure, decision.Class, attempt.Context);
                    }
                    call.AttemptFailed(deployment, failure, attempt.Context);
                    lastFailure = failure;
                    onlyContextWindow &= decision.Class == FailureClass.ContextWindow;
                }
                finally
                {
                    if (opened is not null)
                    {
                        await opened.DisposeAsync();
                    }
                }

                if (decision.Next == NextStep.RetrySame)
                {
                    history.Retrying();
                    try
                    {
                        await Task.Delay(decision.Delay, time, clientAborted);
                    }
                    catch (OperationCanceledException)
                    {
                        call.Failed(deployment, deployment != chain[0], StatusCodes.Status499ClientClosedRequest, "client_closed_request",
                            "The client closed the connection.");
                        throw;
                    }
                    continue;
                }
                var special = decision.Next switch
                {
                    NextStep.ContextWindowFallbacks => routing.ContextWindowFallbacks(alias),
                    NextStep.ContentPolicyFallbacks => routing.ContentPolicyFallbacks(alias),
                    _ => null,
                };
                if (special is not null)
                {
                    queue = new Queue<Deployment>(special);
                }
                break;
            }
        }

        var tried = string.Join("; ", call.Tried);
        if (lastFailure is null && call.Attempts == 0 && onlyContextSkips && call.Tried.Count > 0)
        {
            var tooLong = new OpenAiError($"The prompt is too long for every deployment of '{alias}': {tried}.",
                OpenAiErrorTypes.InvalidRequest, "messages", "context_length_exceeded");
            call.Failed(null, false, StatusCodes.Status400BadRequest, tooLong.Type, tooLong.Message);
            throw new RoutingException(StatusCodes.Status400BadRequest, tooLong);
        }
        if (lastFailure is null && call.Attempts == 0 && onlyUnservable && call.Tried.Count > 0)
        {
            // No deployment could take the request as it was sent, whatever their health: the client's to change.
            var unsupported = new OpenAiError($"No deployment of '{alias}' can serve this request as sent: {tried}.",
                OpenAiErrorTypes.InvalidRequest, null, "unsupported_by_deployments");
            call.Failed(null, false, StatusCodes.Status400BadRequest, unsupported.Type, unsupported.Message);
            throw new RoutingException(StatusCodes.Status400BadRequest, unsupported);
        }
        if (lastFailure is null && call.Attempts == 0)
        {
            var error = new OpenAiError($"No deployment of '{alias}' is available right now: {tried}.",
                OpenAiErrorTypes.ServiceUnavailable, null, "no_deployment_available");
            call.Failed(null, false, StatusCodes.Status503ServiceUnavailable, error.Type, error.Message);
            throw new RoutingException(StatusCodes.Status503ServiceUnavailable, error, RetryAfter() ?? (overloaded ? TimeSpan.FromSeconds(1) : null));
        }
        if (lastFailure is not null && onlyContextWindow)
        {
            // Every deployment that was tried says the prompt is too long: the client's to shorten, not a service outage.
            var tooLong = new OpenAiError($"The prompt is too long for every deployment of '{alias}': {tried}.",
                OpenAiErrorTypes.InvalidRequest, "messages", "context_length_exceeded");
            call.Failed(lastTried, lastTried is not null && lastTried != chain[0], StatusCodes.Status400BadRequest, tooLong.Type, tooLong.Message);
            throw new RoutingException(StatusCodes.Status400BadRequest, tooLong);
        }
        // Every provider is down for this request: a 503 (the service is unavailable, come back) rather than a 502,
        // which clients read as one bad response worth retrying at once.
        var failed = new OpenAiError($"Every deployment of '{alias}' failed: {tried}.", OpenAiErrorTypes.ServiceUnavailable, null, "all_deployments_failed");
        call.Failed(lastTried, lastTried is not null && lastTried != chain[0], StatusCodes.Status503ServiceUnavailable, failed.Type, failed.Message);
        throw new RoutingException(StatusCodes.Status503ServiceUnavailable, failed, RetryAfter() ?? TimeSpan.FromSeconds(1));
    }

    /// <summary>The provider's refusal, handed to the client as it is: another deployment would refuse it too.</summary>
    public static RoutingException Refused(CallTracker call, Deployment deployment, bool fallback, UpstreamException failure, FailureClass failureClass,
        AttemptContext context)
    {
        var status = failure.StatusCode ?? StatusCodes.Status400BadRequest;
        var code = failureClass == FailureClass.ContentPolicy ? "content_policy_violation" : "upstream_rejected_request";
        var error = new OpenAiError(failure.Message, OpenAiErrorTypes.InvalidRequest, null, code);
        call.Failed(deployment, fallback, status, error.Type, error.Message, context: context);
        return new RoutingException(status, error);
    }

    /// <summary>
    /// <c>simple-shuffle</c>: the alias's own deployments in random order (weighted by <c>rpm</c> or <c>tpm</c>, see
    /// <see cref="Shuffle"/>), then its fallbacks in order.
    /// </summary>
    public IEnumerable<Deployment> Order(Deployment[] chain, string alias)
    {
        if (!routing.ShuffleWithinAlias)
        {
            return chain;
        }
        return Shuffle(chain.Where(d => d.Alias == alias).ToArray(), Random.Shared).Concat(chain.Where(d => d.Alias != alias));
    }

    /// <summary>
    /// LiteLLM's <c>simple-shuffle</c>: when the first deployment has an <c>rpm</c>, each is picked in proportion to its
    /// <c>rpm</c> (none counts as 0); else, when it has a <c>tpm</c>, to its <c>tpm</c>; else all alike. LiteLLM picks one;
    /// here the rest follow in the same weighted way (the next pick among those left), as the order to fail over in.
    /// Deployments of weight 0 come last, in random order.
    /// </summary>
    public static Deployment[] Shuffle(Deployment[] own, Random random)
    {
        Func<Deployment, int?>? weightOf = own.Length == 0 ? null
            : own[0].Rpm is not null ? d => d.Rpm
            : own[0].Tpm is not null ? d => d.Tpm
            : null;
        if (weightOf is null)
        {
            random.Shuffle(own);
            return own;
        }
        // Efraimidis and Spirakis: ordering by u^(1/w), u uniform in (0, 1), draws in turn in proportion to weight.
        return own.Select(d => (d, Key: weightOf(d) is > 0 and var w ? Math.Pow(1 - random.NextDouble(), 1.0 / w) : -random.NextDouble()))
            .OrderByDescending(e => e.Key)
            .Select(e => e.d)
            .ToArray();
    }

    /// <summary>When the soonest open breaker of any deployment lets a probe through.</summary>
    private TimeSpan? RetryAfter()
    {
        var soonest = breakers.All.Select(b => b.OpenUntil).Where(t => t is not null).Min();
        return soonest is { } until ? until - time.GetUtcNow() : null;
    }

    private static partial class Log
    {
        [LoggerMessage(2010, LogLevel.Warning, "An attempt on {Deployment} failed with an unexpected exception; handled as a malformed answer")]
        public static partial void UnexpectedFailure(ILogger logger, string deployment, Exception exception);
    }
}
