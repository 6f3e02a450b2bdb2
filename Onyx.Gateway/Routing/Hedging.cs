using System.Runtime.CompilerServices;
using Onyx.Gateway.Model;

namespace Onyx.Gateway.Routing;

/// <summary>
/// <c>hedge_after_ms</c>: starts the chain's first deployment and, if it has produced no token after that long, the
/// next one beside it; the first to produce a token serves the answer and the other is cancelled at once, with no
/// verdict on its deployment. Every attempt launched here is disposed on every way out, the client leaving included.
/// </summary>
internal sealed class Hedging(RoutingTable routing, AttemptOpener opener, Failover failover, AttemptLimits limits, TimeProvider time)
{
    private sealed record Launched(Attempt Attempt, Task<StreamHead> Head);

    /// <summary>
    /// The winner, or null (with <paramref name="tried"/> filled) when neither served, so failover goes on with the rest
    /// of the chain — or with <paramref name="plan"/> when a refusal named other deployments (the alias's special fallbacks).
    /// </summary>
    /// <exception cref="RoutingException">A deployment refused the request itself; the client gets that.</exception>
    public async Task<Routed<StreamHead>?> RaceAsync(CallTracker call, Deployment[] chain, TimeSpan after, HashSet<Deployment> tried,
        CancellationToken clientAborted, StrongBox<Deployment[]?> plan)
    {
        var candidates = failover.Order(chain, call.Request.Model).Where(d => opener.Unfit(d, call) is null).ToList();
        if (candidates.Count < 2)
        {
            return null;
        }
        var running = new List<Launched>(2);
        var won = false;
        try
        {
            if (await LaunchAsync(call, candidates[0], tried, clientAborted) is not { } first)
            {
                return null;
            }
            running.Add(first);
            using (var hedgeTimer = new CancellationTokenSource(after, time))
            {
                await Task.WhenAny(first.Head, Task.Delay(Timeout.Infinite, hedgeTimer.Token)).WaitAsync(clientAborted).ConfigureAwait(false);
            }
            if (!first.Head.IsCompleted && await LaunchAsync(call, candidates[1], tried, clientAborted) is { } second)
            {
                running.Add(second);
            }
            while (running.Count > 0)
            {
                var done = await Task.WhenAny(running.Select(r => (Task)r.Head));
                var settled = running.Single(r => r.Head == done);
                running.Remove(settled);
                if (settled.Head.IsCompletedSuccessfully)
                {
                    won = true;
                    settled.Attempt.Succeeded();
                    var deployment = settled.Attempt.Deployment;
                    return new Routed<StreamHead>(new RouteInfo(call.RequestId, call.Request.Model, deployment, deployment != chain[0], call.Attempts),
                        settled.Head.Result, settled.Attempt);
                }
                await using (settled.Attempt)
                {
                    if (clientAborted.IsCancellationRequested)
                    {
                        // Everything is given back before the call's record says it ended.
                        await settled.Attempt.DisposeAsync();
                        foreach (var other in running)
                        {
                            other.Attempt.Cancel();
                        }
                        await Task.WhenAll(running.Select(DisposeWhenDoneAsync));
                        running.Clear();
                        call.Failed(settled.Attempt.Deployment, settled.Attempt.Deployment != chain[0], StatusCodes.Status499ClientClosedRequest,
                            "client_closed_request", "The client closed the connection.", context: settled.Attempt.Context);
                        throw new OperationCanceledException(clientAborted);
                    }
                    var failure = AttemptFailures.Describe(settled.Head.Exception!.InnerException!, settled.Attempt.Deployment,
                        $"no first token within {limits.FirstToken(call.Request).TotalSeconds:0.###}s");
                    var failureClass = FailurePolicy.Classify(failure, settled.Attempt.Context.HeadersReceived);
                    settled.Attempt.Judge(FailurePolicy.VerdictOf(failureClass, failure), failure);
                    var deployment = settled.Attempt.Deployment;
                    var contentFallbacks = routing.ContentPolicyFallbacks(call.Request.Model);
                    if (failureClass == FailureClass.BadRequest || (failureClass == FailureClass.ContentPolicy && contentFallbacks is null))
                    {
                        throw Failover.Refused(call, deployment, deployment != chain[0], failure, failureClass, settled.Attempt.Context);
                    }
                    call.AttemptFailed(deployment, failure, settled.Attempt.Context);
                    plan.Value = failureClass switch
                    {
                        FailureClass.ContentPolicy => contentFallbacks,
                        FailureClass.ContextWindow => routing.ContextWindowFallbacks(call.Request.Model) ?? plan.Value,
                        _ => plan.Value,
                    };
                }
            }
            return null;
        }
        finally
        {
            // The loser, or every attempt when the client left: cancelled, and disposed once its reader has let go — in
            // the background behind a winner (its answer must not wait), before anything else otherwise.
            foreach (var loser in running)
            {
                loser.Attempt.Cancel();
            }
            var disposals = running.Select(DisposeWhenDoneAsync).ToList();
            if (!won)
            {
                await Task.WhenAll(disposals);
            }
        }
    }

    private async Task<Launched?> LaunchAsync(CallTracker call, Deployment deployment, HashSet<Deployment> tried, CancellationToken clientAborted)
    {
        var (attempt, skip) = await opener.OpenAsync(call, deployment, clientAborted);
        if (attempt is null)
        {
            call.Skipped(deployment, skip.Reason);
            return null;
        }
        tried.Add(deployment);
        var head = StreamStarter.StartAsync(attempt, call.Request, limits.FirstToken(call.Request));
        return new Launched(attempt, head);
    }

    private static async Task DisposeWhenDoneAsync(Launched launched)
    {
        try
        {
            await launched.Head.ConfigureAwait(false);
        }
        catch
        {
            // Cancelled on purpose: its outcome says nothing.
        }
        await launched.Attempt.DisposeAsync();
    }
}
