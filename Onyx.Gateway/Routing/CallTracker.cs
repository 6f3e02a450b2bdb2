using System.Diagnostics;
using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;

namespace Onyx.Gateway.Routing;

/// <summary>
/// Follows one client request through its attempts, keeps its spans, and tells the observers (call log, metrics,
/// audit trail) and the call's owner (rate limits, spend) what happened: every failed attempt as it fails, and the
/// call's record exactly once, whichever way it ends.
/// </summary>
internal sealed class CallTracker(ChatRequest request, string requestId, CallOwner owner, TimeProvider time, ICallObserver[] observers,
    TokenEstimator estimator, DeploymentLimits deploymentLimits)
{
    private int? _promptTokens;

    private readonly long _started = time.GetTimestamp();
    private readonly Activity? _activity = CallSpans.StartCall(request, requestId);
    private readonly List<string> _tried = [];
    private readonly List<AttemptStep> _steps = [];
    private List<ResumedAt>? _resumes;
    private TokenUsage _earlierUsage;
    private decimal? _earlierCost;
    private string? _answerBefore;
    private int _answerSkipped;
    private bool _finished;

    public string RequestId { get; } = requestId;

    public ChatRequest Request { get; } = request;

    public int Attempts { get; private set; }

    public TimeSpan? TimeToFirstToken { get; private set; }

    /// <summary>"deployment (reason)" for every deployment skipped or failed, for the final error message.</summary>
    public IReadOnlyList<string> Tried => _tried;

    /// <summary>When the request arrived, a timestamp of the gateway's clock.</summary>
    public long Started => _started;

    public TimeSpan Elapsed => time.GetElapsedTime(_started);

    /// <summary>
    /// The prompt's tokens, estimated with the tokenizer once and only when something asks (a pre-call check, a
    /// deployment's <c>tpm</c>): most requests never pay for it.
    /// </summary>
    public int PromptTokens => _promptTokens ??= estimator.CountPrompt(Request.Messages);

    public void Skipped(Deployment deployment, string reason)
    {
        _tried.Add($"{deployment.Id} ({reason})");
        CallSpans.Skipped(_activity, deployment, reason);
        _steps.Add(new AttemptStep(deployment.Id, "skipped", reason, null, CallRecord.Milliseconds(Elapsed)));
    }

    /// <summary>Counts an attempt on <paramref name="deployment"/> and starts its span (the current one from here on).</summary>
    public AttemptContext AttemptStarted(Deployment deployment)
    {
        Attempts++;
        return new AttemptContext(RequestId) { Activity = CallSpans.StartAttempt(_activity, deployment, Attempts) };
    }

    /// <summary>
    /// The answer broke on <paramref name="from"/> after <paramref name="partial"/> and continues on <paramref name="to"/>,
    /// whose text counts from its <paramref name="skippedChars"/>th character (what it reproduced of the partial answer).
    /// </summary>
    public void Resumed(Deployment from, Deployment to, string partial, int skippedChars, string reason, string how)
    {
        var resume = new ResumedAt(from.Id, to.Id, partial.Length, reason, how);
        (_resumes ??= []).Add(resume);
        (_answerBefore, _answerSkipped) = (partial, skippedChars);
        foreach (var observer in observers)
        {
            observer.Resumed(Request.Model, resume);
        }
        CallSpans.Resumed(_activity, from, to, partial.Length, reason);
    }

    public void StreamOpened()
    {
        foreach (var observer in observers)
        {
            observer.StreamOpened();
        }
    }

    public void StreamClosed()
    {
        foreach (var observer in observers)
        {
            observer.StreamClosed();
        }
    }

    public void FirstToken() => TimeToFirstToken ??= Elapsed;

    /// <summary>
    /// An attempt that produced <paramref name="usage"/> on <paramref name="deployment"/> before its answer was taken
    /// over by another (a stream resumed elsewhere): its tokens cost what that deployment charges, and the call's
    /// usage, as reported when it ends, includes them.
    /// </summary>
    public void AttemptProduced(Deployment deployment, TokenUsage usage)
    {
        _earlierUsage += usage;
        if (deployment.Price is { } price)
        {
            var cost = price.CostOf(usage);
            _earlierCost = (_earlierCost ?? 0) + cost;
            Charged(deployment, cost);
        }
    }

    public void AttemptFailed(Deployment deployment, UpstreamException failure, AttemptContext context)
    {
        var elapsedMs = CallRecord.Milliseconds(Elapsed);
        _tried.Add($"{deployment.Id} ({failure.Reason})");
        _steps.Add(new AttemptStep(deployment.Id, "failed", failure.Reason, failure.StatusCode, elapsedMs));
        CallSpans.AttemptFailed(context, failure);
        var record = new AttemptFailure
        {
            Timestamp = time.GetUtcNow(),
            RequestId = RequestId,
            Alias = Request.Model,
            Deployment = deployment.Id,
            AttemptNumber = Attempts,
            Kind = failure.KindLabel,
            Reason = failure.Reason,
            StatusCode = failure.StatusCode,
            Message = failure.Message,
            ElapsedMs = elapsedMs,
        };
        foreach (var observer in observers)
        {
            observer.AttemptFailed(record);
        }
    }

    /// <param name="answer">A non-streamed answer's text (a stream's is in <paramref name="context"/>).</param>
    public void Succeeded(RouteInfo route, TokenUsage? usage, AttemptContext context, string? answer = null) =>
        Finish(route.Deployment, route.Fallback, 200, null, usage, context, answer);

    /// <summary>The call failed (<paramref name="deployment"/> is the last one that answered, if any).</summary>
    public void Failed(Deployment? deployment, bool fallback, int status, string errorType, string message, TokenUsage? usage = null, AttemptContext? context = null) =>
        Finish(deployment, fallback, status, new CallError(errorType, message), usage, context, null);

    private void Finish(Deployment? deployment, bool fallback, int status, CallError? error, TokenUsage? usage, AttemptContext? context, string? answer)
    {
        if (_finished)
        {
            return;
        }
        _finished = true;
        var elapsed = Elapsed;
        var tokens = usage ?? Estimate(context);
        // What counts against the caller's token limit: what a provider reported, or — without a report — the
        // estimate, but only if a model produced something; a call that failed before any token costs nothing.
        var charged = usage is not null || error is null || TimeToFirstToken is not null;
        // The same rule for money: a call that failed before any token was produced costs nothing. Each attempt that
        // produced tokens costs what its own deployment charges: the last one here, earlier ones as they were taken over.
        decimal? lastCost = deployment?.Price is { } price ? (charged ? price.CostOf(tokens - _earlierUsage) : 0) : null;
        decimal? cost = lastCost is null && _earlierCost is null ? null : (lastCost ?? 0) + (_earlierCost ?? 0);
        owner.Finished?.Invoke(charged ? tokens.Total : 0, cost);
        if (charged && deployment is not null)
        {
            deploymentLimits.RecordTokens(deployment, tokens.Total);
        }
        if (lastCost is { } spent && deployment is not null)
        {
            Charged(deployment, spent);
        }
        var latencyMs = CallRecord.Milliseconds(elapsed);
        if (deployment is not null && (error is null || _steps is not [.., var last] || last.Deployment != deployment.Id || last.Outcome != "failed"))
        {
            // The deployment the call ended on, unless its failure is already the last step recorded.
            _steps.Add(new AttemptStep(deployment.Id, error is null ? "success" : error.Type, null, status, latencyMs));
        }
        var record = new CallRecord
        {
            Timestamp = time.GetUtcNow(),
            RequestId = RequestId,
            Alias = Request.Model,
            UserId = owner.UserId,
            KeyName = owner.KeyName,
            EndUser = Request.User,
            ClientAddress = owner.ClientAddress,
            Deployment = deployment?.Id,
            Provider = deployment?.Provider.Prefix,
            ProviderModel = deployment?.ProviderModel,
            ResponseModel = context?.ResponseModel,
            Stream = Request.Stream,
            Status = status,
            Error = error,
            Fallback = fallback,
            AttemptCount = Attempts,
            Steps = _steps.ToArray(),
            Tokens = new TokenCounts(tokens.Prompt, tokens.Completion, tokens.Total, tokens.Estimated),
            CostUsd = cost,
            Duration = elapsed,
            TimeToFirstToken = TimeToFirstToken,
            Resumed = _resumes,
            Content = observers.Any(o => o.WantsContent) ? new CallContent(Request.Messages, answer ?? Answer(context)) : null,
        };
        CallSpans.EndAttempt(context, error is null ? "success" : "failed", tokens, error?.Type);
        CallSpans.EndCall(_activity, record);
        foreach (var observer in observers)
        {
            observer.CallEnded(record);
        }
    }

    private void Charged(Deployment deployment, decimal cost)
    {
        foreach (var observer in observers)
        {
            observer.Charged(Request.Model, deployment.Id, cost);
        }
    }

    /// <summary>Counts with the tokenizer what the provider did not report (prompt always; completion if any).</summary>
    public TokenUsage Estimate(AttemptContext? context)
    {
        if (Attempts == 0)
        {
            return default;
        }
        var completion = context is null ? 0 : estimator.Count(context.CompletionText.ToString());
        return new TokenUsage(estimator.CountPrompt(Request.Messages), completion, Estimated: true);
    }

    /// <summary>The text the client received: what it had when the answer was resumed, and the rest from the last attempt.</summary>
    private string? Answer(AttemptContext? context)
    {
        if (context is null)
        {
            return _answerBefore;
        }
        var text = context.CompletionText;
        var skipped = Math.Min(_answerSkipped, text.Length);
        return _answerBefore + text.ToString(skipped, text.Length - skipped);
    }
}
