using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;
using Onyx.Gateway.Resilience;
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
    IOptions<OnyxOptions> onyxOptions,
    IOptions<LiteLlmOptions> liteLlmOptions,
    TimeProvider time,
    CallLog callLog,
    GatewayMetrics metrics,
    TokenEstimator estimator)
{
    /// <summary>LiteLLM's default request timeout is far longer; ten minutes bounds a non-streaming attempt.</summary>
    private static readonly TimeSpan DefaultAttemptTimeout = TimeSpan.FromMinutes(10);

    private readonly Dictionary<ProviderProtocol, IChatProvider> _providers = providers.ToDictionary(p => p.Protocol);
    private readonly RoutingOptions _options = onyxOptions.Value.Routing;
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
        call.Succeeded(route, result.Usage, context);
        return new RoutedCompletion(route, result.Body);
    }

    /// <summary>
    /// Starts a stream: returns once a deployment has produced its first token (or a complete empty answer), so
    /// the caller can still send an ordinary 200 whichever deployment it was.
    /// </summary>
    public async Task<RoutedStream> StreamAsync(ChatRequest request, string requestId, CallOwner owner, CancellationToken clientAborted)
    {
        var call = Track(request, requestId, owner);
        var (route, start, context) = await RouteAsync(call, clientAborted, async (deployment, provider, context, timer, token) =>
        {
            timer.CancelAfter(_options.FirstTokenTimeout);
            var chunks = provider.StreamAsync(deployment, request, context, token).GetAsyncEnumerator(token);
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
                    head.Add(chunks.Current);
                    if (chunks.Current.Info.HasContent || chunks.Current.Info.HasFinishReason)
                    {
                        break;
                    }
                }
                return new StreamHead(chunks, head, ended);
            }
            catch
            {
                await chunks.DisposeAsync();
                throw;
            }
        }, $"no first token within {_options.FirstTokenTimeout.TotalSeconds:0.###}s");
        call.FirstToken();
        return new RoutedStream(route, start, context, call, breakers.For(route.Deployment), _options.StreamIdleTimeout, time, metrics);
    }

    private CallTracker Track(ChatRequest request, string requestId, CallOwner owner) => new(request, requestId, owner, time, callLog, metrics, estimator);

    private delegate Task<T> Attempt<T>(Deployment deployment, IChatProvider provider, AttemptContext context, CancellationTokenSource timer, CancellationToken token);

    private async Task<(RouteInfo Route, T Result, AttemptContext Context)> RouteAsync<T>(
        CallTracker call, CancellationToken clientAborted, Attempt<T> attempt, string timeoutReason) where T : class
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
        foreach (var deployment in Order(chain, alias))
        {
            if (deployment.UnavailableReason is { } unavailable)
            {
                call.Skipped(deployment, $"unavailable: {unavailable}");
                continue;
            }
            var breaker = breakers.For(deployment);
            if (await breaker.TryAcquireAsync() is not (true, var permit))
            {
                call.Skipped(deployment, "circuit open");
                continue;
            }

            call.AttemptStarted();
            lastTried = deployment;
            var context = new AttemptContext(call.RequestId);
            // The timer is bound to the TimeProvider, so tests drive first-token and attempt timeouts with a fake clock.
            var timer = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
            var linked = CancellationTokenSource.CreateLinkedTokenSource(clientAborted, timer.Token);
            try
            {
                var result = await attempt(deployment, _providers[deployment.Provider.Protocol], context, timer, linked.Token);
                var route = new RouteInfo(call.RequestId, alias, deployment, deployment != chain[0], call.Attempts);
                if (result is StreamHead head)
                {
                    // The stream keeps both sources: the timer becomes its idle timer.
                    head.Adopt(timer, linked);
                }
                else
                {
                    linked.Dispose();
                    timer.Dispose();
                }
                breaker.OnSuccess(permit);
                return (route, result, context);
            }
            catch (Exception ex) when (ex is OperationCanceledException or UpstreamException)
            {
                linked.Dispose();
                timer.Dispose();
                if (clientAborted.IsCancellationRequested)
                {
                    breaker.OnAbandoned(permit);
                    call.Failed(deployment, deployment != chain[0], StatusCodes.Status499ClientClosedRequest, "client_closed_request", "The client closed the connection.", context: context);
                    throw new OperationCanceledException(clientAborted);
                }
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
                else
                {
                    breaker.OnFailure(permit, failure.Reason);
                }
                call.AttemptFailed(deployment, failure);
                lastFailure = failure;
            }
        }

        var tried = string.Join("; ", call.Tried);
        if (lastFailure is null)
        {
            var error = new OpenAiError($"No deployment of '{alias}' is available right now: {tried}.",
                OpenAiErrorTypes.ServiceUnavailable, null, "no_deployment_available");
            call.Failed(null, false, StatusCodes.Status503ServiceUnavailable, error.Type, error.Message);
            throw new RoutingException(StatusCodes.Status503ServiceUnavailable, error, RetryAfter());
        }
        var failed = new OpenAiError($"Every deployment of '{alias}' failed: {tried}.", OpenAiErrorTypes.Upstream, null, "all_deployments_failed");
        call.Failed(lastTried, lastTried != chain[0], StatusCodes.Status502BadGateway, failed.Type, failed.Message);
        throw new RoutingException(StatusCodes.Status502BadGateway, failed);
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
