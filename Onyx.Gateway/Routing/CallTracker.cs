using System.Diagnostics;
using Onyx.Gateway.Audit;
using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;
using Onyx.Gateway.Telemetry;

namespace Onyx.Gateway.Routing;

/// <summary>
/// Follows one client request through its attempts and writes its call log record, metrics, spans, cost, attempt
/// events and audit record exactly once, whichever way it ends.
/// </summary>
internal sealed class CallTracker(ChatRequest request, string requestId, CallOwner owner, TimeProvider time, CallLog log, GatewayMetrics metrics,
    TokenEstimator estimator, AuditWriter audit, DeploymentLimits deploymentLimits)
{
    private int? _promptTokens;

    private readonly long _started = time.GetTimestamp();
    private readonly Activity? _activity = GatewayTracing.StartCall(request, requestId);
    private readonly List<string> _tried = [];
    private readonly List<AuditAttempt> _attempts = [];
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

    public TimeSpan Elapsed => time.GetElapsedTime(_started);

    /// <summary>
    /// The prompt's tokens, estimated with the tokenizer once and only when something asks (a pre-call check, a
    /// deployment's <c>tpm</c>): most requests never pay for it.
    /// </summary>
    public int PromptTokens => _promptTokens ??= estimator.CountPrompt(Request.Messages);

    public void Skipped(Deployment deployment, string reason)
    {
        _tried.Add($"{deployment.Id} ({reason})");
        GatewayTracing.Skipped(_activity, deployment, reason);
        _attempts.Add(new AuditAttempt(deployment.Id, "skipped", reason, null, Milliseconds(Elapsed)));
    }

    /// <summary>Counts an attempt on <paramref name="deployment"/> and starts its span (the current one from here on).</summary>
    public AttemptContext AttemptStarted(Deployment deployment)
    {
        Attempts++;
        return new AttemptContext(RequestId) { Activity = GatewayTracing.StartAttempt(_activity, deployment, Attempts) };
    }

    /// <summary>
    /// The answer broke on <paramref name="from"/> after <paramref name="partial"/> and continues on <paramref name="to"/>,
    /// whose text counts from its <paramref name="skippedChars"/>th character (what it reproduced of the partial answer).
    /// </summary>
    public void Resumed(Deployment from, Deployment to, string partial, int skippedChars, string reason, string how)
    {
        (_resumes ??= []).Add(new ResumedAt(from.Id, to.Id, partial.Length, reason, how));
        (_answerBefore, _answerSkipped) = (partial, skippedChars);
        metrics.Resumed(Request.Model, from.Id, to.Id, reason);
        GatewayTracing.Resumed(_activity, from, to, partial.Length, reason);
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
            metrics.Cost(Request.Model, deployment.Id, cost);
        }
    }

    public void AttemptFailed(Deployment deployment, UpstreamException failure, AttemptContext context)
    {
        _tried.Add($"{deployment.Id} ({failure.Reason})");
        _attempts.Add(new AuditAttempt(deployment.Id, "failed", failure.Reason, failure.StatusCode, Milliseconds(Elapsed)));
        metrics.UpstreamError(deployment.Id, GatewayTracing.Kind(failure.Kind), failure.Reason);
        GatewayTracing.AttemptFailed(context, failure);
        log.Write(new LlmAttemptRecord
        {
            Timestamp = time.GetUtcNow(),
            RequestId = RequestId,
            Alias = Request.Model,
            Deployment = deployment.Id,
            Attempt = Attempts,
            Reason = failure.Reason,
            Message = failure.Message,
            ElapsedMs = Milliseconds(Elapsed),
        });
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
        var now = time.GetUtcNow();
        var tokenCounts = new TokenCounts(tokens.Prompt, tokens.Completion, tokens.Total, tokens.Estimated);
        var latencyMs = Milliseconds(elapsed);
        double? ttftMs = TimeToFirstToken is { } ttft ? Milliseconds(ttft) : null;
        var record = new LlmCallRecord
        {
            Timestamp = now,
            RequestId = RequestId,
            Alias = Request.Model,
            UserId = owner.UserId,
            KeyName = owner.KeyName,
            Deployment = deployment?.Id,
            ProviderModel = deployment?.ProviderModel,
            ResponseModel = context?.ResponseModel,
            Stream = Request.Stream,
            Tokens = tokenCounts,
            LatencyMs = latencyMs,
            TtftMs = ttftMs,
            Success = error is null,
            Status = status,
            Error = error,
            Fallback = fallback,
            Attempts = Attempts,
            Resumed = _resumes,
            CostUsd = cost,
        };
        log.Write(record);
        GatewayTracing.EndAttempt(context, error is null ? "success" : "failed", tokens, error?.Type);
        GatewayTracing.EndCall(_activity, record);
        if (deployment is not null && (error is null || _attempts is not [.., var last] || last.Deployment != deployment.Id || last.Outcome != "failed"))
        {
            // The deployment the call ended on, unless its failure is already the last attempt recorded.
            _attempts.Add(new AuditAttempt(deployment.Id, error is null ? "success" : error.Type, null, status, latencyMs));
        }
        audit.Write(new AuditRecord
        {
            AuditId = UniqueIds.NewVersion7(now),
            Timestamp = now,
            RequestId = RequestId,
            Replica = audit.Replica,
            KeyName = owner.KeyName,
            UserId = owner.UserId,
            EndUser = Request.User,
            ClientAddress = owner.ClientAddress,
            Alias = Request.Model,
            Stream = Request.Stream,
            Status = status,
            Success = error is null,
            Error = error,
            Deployment = deployment?.Id,
            ResponseModel = context?.ResponseModel,
            Fallback = fallback,
            Attempts = _attempts.ToArray(),
            Tokens = tokenCounts,
            CostUsd = cost,
            LatencyMs = latencyMs,
            TtftMs = ttftMs,
            Resumed = _resumes,
            Content = audit.IncludeContent ? new AuditContent(Request.Messages, answer ?? Answer(context)) : null,
        });
        metrics.Request(Request.Model, deployment?.Id, error is null ? "success" : error.Type, fallback);
        if (lastCost is { } spent && deployment is not null)
        {
            metrics.Cost(Request.Model, deployment.Id, spent);
        }
        if (deployment is not null)
        {
            metrics.Completed(deployment.Provider.Prefix, Request.Model, context?.ResponseModel, elapsed, TimeToFirstToken,
                tokens.Prompt, tokens.Completion, error?.Type);
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

    private static double Milliseconds(TimeSpan span) => Math.Round(span.TotalMilliseconds, 2);
}
