using System.Runtime.CompilerServices;
using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Routing;

/// <summary>
/// Serves a chat request: a non-streamed one whole from the first deployment that answers (<see cref="Failover"/>); a
/// streamed one from the first deployment that produces a token (raced by <see cref="Hedging"/> when the alias asks),
/// continued elsewhere if it breaks mid-answer (<see cref="RoutedStream"/>, <see cref="StreamResumer"/>).
/// </summary>
internal sealed class ChatCompletionRouter(
    RoutingTable routing,
    Failover failover,
    Hedging hedging,
    StreamResumer resumer,
    AttemptLimits limits,
    FailurePolicy policy,
    TimeProvider time,
    IEnumerable<ICallObserver> observers,
    TokenEstimator estimator,
    DeploymentLimits deploymentLimits)
{
    private readonly ICallObserver[] _observers = observers.ToArray();

    public async Task<RoutedCompletion> CompleteAsync(ChatRequest request, string requestId, CallOwner owner, CancellationToken clientAborted)
    {
        var call = Track(request, requestId, owner);
        try
        {
            var routed = await failover.RunAsync(call, attempt =>
            {
                var left = policy.Budget - call.Elapsed;
                attempt.Timer.CancelAfter(left > TimeSpan.Zero ? left : TimeSpan.Zero);
                attempt.Enter();
                return attempt.Provider.CompleteAsync(attempt.Deployment, request, attempt.Context, attempt.Token);
            }, "no answer within the attempt timeout", clientAborted);
            await routed.Attempt.DisposeAsync();
            call.Succeeded(routed.Route, routed.Result.Usage, routed.Attempt.Context, routed.Result.CompletionText);
            return new RoutedCompletion(routed.Route, routed.Result.Body);
        }
        catch (Exception ex) when (ex is not RoutingException)
        {
            Ended(call, ex, clientAborted);
            throw;
        }
    }

    /// <summary>
    /// Starts a stream: returns once a deployment has produced its first token (or a complete empty answer), so the
    /// caller can still send an ordinary 200 whichever deployment it was.
    /// </summary>
    public async Task<RoutedStream> StreamAsync(ChatRequest request, string requestId, CallOwner owner, CancellationToken clientAborted)
    {
        var call = Track(request, requestId, owner);
        try
        {
            var firstToken = limits.FirstToken(request);
            Routed<StreamHead>? routed = null;
            HashSet<Deployment>? raced = null;
            Deployment[]? plan = null;
            if (routing.TryGetChain(request.Model, out var chain) && chain[0].HedgeAfter is { } after)
            {
                raced = [];
                var hedgePlan = new StrongBox<Deployment[]?>();
                routed = await hedging.RaceAsync(call, chain, after, raced, clientAborted, hedgePlan);
                plan = hedgePlan.Value;
            }
            routed ??= await failover.RunAsync(call, attempt => StreamStarter.StartAsync(attempt, request, firstToken),
                $"no first token within {firstToken.TotalSeconds:0.###}s", clientAborted, raced, plan);
            call.FirstToken();
            return new RoutedStream(routed.Route, routed.Result, call, limits.Idle, time, resumer, chain[0]);
        }
        catch (Exception ex) when (ex is not RoutingException)
        {
            Ended(call, ex, clientAborted);
            throw;
        }
    }

    /// <summary>
    /// Every way out leaves the call's records: wherever the client left (a hedge's wait, a slot's queue) or whatever
    /// went wrong, the call is written as ended here, unless a more precise record was already written.
    /// </summary>
    private static void Ended(CallTracker call, Exception ex, CancellationToken clientAborted)
    {
        if (ex is OperationCanceledException && clientAborted.IsCancellationRequested)
        {
            call.Failed(null, false, StatusCodes.Status499ClientClosedRequest, "client_closed_request", "The client closed the connection.");
        }
        else
        {
            call.Failed(null, false, StatusCodes.Status500InternalServerError, OpenAiErrorTypes.Server, "The gateway failed to route the request.");
        }
    }

    private CallTracker Track(ChatRequest request, string requestId, CallOwner owner) =>
        new(request, requestId, owner, time, _observers, estimator, deploymentLimits);
}
