using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;

namespace Onyx.Gateway.Routing;

/// <summary>
/// Continues an answer that broke after part of it reached the client, on the deployments that follow the broken one
/// in the chain. Each is asked its own way (<see cref="ContinuationStyle"/>): by prefill (the answer so far minus its
/// last word, which the deployment must write again), by DeepSeek's prefix flag, or by replaying the request; a
/// deployment that refuses a prefill (4xx) is asked again by replay before the next one is tried. Whatever the style,
/// nothing reaches the client until the seam is proven (<see cref="SeamCheck"/>).
/// </summary>
internal sealed class StreamResumer(RoutingTable routing, AttemptOpener opener, AttemptLimits limits, TokenEstimator estimator)
{
    /// <summary>Why this answer cannot be continued anywhere, or null when it may be.</summary>
    public static string? WhyNot(ChatRequest request, Deployment first, bool toolCall, bool reasoning, bool logprobs) =>
        !first.ResumeStreams ? "resume_streams is off for this alias"
        : toolCall ? "a tool call was in flight, so the answer cannot be continued"
        : reasoning ? "it broke while the model was reasoning, and reasoning cannot be continued elsewhere"
        : logprobs || RequestFeatures.WantsLogprobs(request) ? "the client asked for logprobs, which another deployment's tokens would not match"
        : null;

    /// <exception cref="UpstreamException">No deployment could continue the answer (the message says why for each).</exception>
    public async Task<ResumedStream> ContinueAsync(CallTracker call, Deployment failed, string delivered, CancellationToken clientAborted)
    {
        routing.TryGetChain(call.Request.Model, out var chain);
        var tried = new List<string>();
        var json = RequestFeatures.WantsJson(call.Request);
        foreach (var deployment in chain.SkipWhile(d => d != failed).Skip(1))
        {
            var styles = StylesFor(deployment.Continuation, json);
            if (styles.Length == 0)
            {
                tried.Add($"{deployment.Id} (continuation: none)");
                continue;
            }
            foreach (var style in styles)
            {
                var (opened, skip) = await opener.OpenAsync(call, deployment, clientAborted);
                if (opened is not { } attempt)
                {
                    call.Skipped(deployment, skip.Reason);
                    tried.Add($"{deployment.Id} ({skip.Reason})");
                    break;
                }
                try
                {
                    var (request, seam) = Continuation(call.Request, deployment, style, delivered);
                    var head = await StreamStarter.StartAsync(attempt, request, limits.FirstToken(call.Request),
                        chunks => SeamSplice.Verified(chunks, seam, deployment, attempt.Token));
                    attempt.Succeeded();
                    var route = new RouteInfo(call.RequestId, call.Request.Model, deployment, Fallback: true, call.Attempts);
                    opened = null;
                    return new ResumedStream(route, head, seam.MatchedLength, seam.How == "replayed" ? "replayed" : Name(style));
                }
                catch (Exception) when (clientAborted.IsCancellationRequested)
                {
                    throw new OperationCanceledException(clientAborted);
                }
                catch (Exception ex)
                {
                    var failure = AttemptFailures.Describe(ex, deployment, $"no first token of the continuation within {limits.FirstToken(call.Request).TotalSeconds:0.###}s");
                    var failureClass = FailurePolicy.Classify(failure, attempt.Context.HeadersReceived);
                    attempt.Judge(FailurePolicy.VerdictOf(failureClass, failure), failure);
                    call.AttemptFailed(deployment, failure, attempt.Context);
                    if (style != ContinuationStyle.Replay && failureClass is FailureClass.BadRequest or FailureClass.ContextWindow)
                    {
                        // It refuses the prefill: asked again, by replay, before the next deployment.
                        continue;
                    }
                    tried.Add(failure.Message);
                    break;
                }
                finally
                {
                    if (opened is not null)
                    {
                        await opened.DisposeAsync();
                    }
                }
            }
        }
        throw new UpstreamException(FailureKind.StreamBroken, tried.Count == 0
            ? "no other deployment could continue the answer"
            : $"no other deployment could continue the answer: {string.Join("; ", tried)}");
    }

    /// <summary>
    /// The styles to try, in order. An answer that must be JSON is only continued by replay: a model constrained to
    /// JSON starts a new value rather than continuing a prefilled one, and only a replay is proven character by character.
    /// </summary>
    private static ContinuationStyle[] StylesFor(ContinuationStyle style, bool json) => style switch
    {
        ContinuationStyle.None => [],
        ContinuationStyle.Replay => [ContinuationStyle.Replay],
        _ when json => [ContinuationStyle.Replay],
        _ => [style, ContinuationStyle.Replay],
    };

    /// <summary>The request a deployment is sent to continue <paramref name="delivered"/>, and the check its answer must pass.</summary>
    private (ChatRequest Request, SeamCheck Seam) Continuation(ChatRequest request, Deployment deployment, ContinuationStyle style, string delivered)
    {
        var prefillLength = style == ContinuationStyle.Replay ? 0 : SeamCheck.PrefillLengthFor(delivered);
        if (prefillLength == 0)
        {
            // Nothing to prefill (a replay, or an answer of one word so far): the request as the client sent it.
            return (request, new SeamCheck(delivered, 0));
        }
        var prefill = delivered[..prefillLength];
        long? limit = (request.RequestedMaxTokens ?? deployment.DefaultMaxTokens) is { } max
            ? Math.Max(1, max - estimator.Count(prefill))
            : null;
        return (request.WithPrefill(prefill, style == ContinuationStyle.PrefixFlag, limit), new SeamCheck(delivered, prefillLength));
    }

    private static string Name(ContinuationStyle style) => style switch
    {
        ContinuationStyle.PrefixFlag => "prefix_flag",
        ContinuationStyle.Replay => "replayed",
        _ => "prefill",
    };
}
