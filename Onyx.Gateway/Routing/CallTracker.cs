using System.Diagnostics;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;
using Onyx.Gateway.Spend;
using Onyx.Gateway.Telemetry;

namespace Onyx.Gateway.Routing;

/// <summary>Who a call is made for, and what to tell when it ends (its total tokens, for the rate limiter).</summary>
internal sealed record CallOwner(string? UserId, string? KeyName, Action<long>? Finished = null)
{
    /// <summary>The API key's hash, whose spend the call's cost is added to (none for the master key or an open gateway).</summary>
    public string? KeyHash { get; init; }

    public static CallOwner Unknown { get; } = new(null, null);
}

/// <summary>
/// Follows one client request through its attempts and writes its call log record, metrics, spans, cost and attempt
/// events exactly once, whichever way it ends.
/// </summary>
internal sealed class CallTracker(ChatRequest request, string requestId, CallOwner owner, TimeProvider time, CallLog log, GatewayMetrics metrics,
    TokenEstimator estimator, SpendTracker spend)
{
    private readonly long _started = time.GetTimestamp();
    private readonly Activity? _activity = GatewayTracing.StartCall(request, requestId);
    private readonly List<string> _tried = [];
    private List<ResumedAt>? _resumes;
    private bool _finished;

    public string RequestId { get; } = requestId;

    public ChatRequest Request { get; } = request;

    public int Attempts { get; private set; }

    public TimeSpan? TimeToFirstToken { get; private set; }

    /// <summary>"deployment (reason)" for every deployment skipped or failed, for the final error message.</summary>
    public IReadOnlyList<string> Tried => _tried;

    public TimeSpan Elapsed => time.GetElapsedTime(_started);

    public void Skipped(Deployment deployment, string reason)
    {
        _tried.Add($"{deployment.Id} ({reason})");
        GatewayTracing.Skipped(_activity, deployment, reason);
    }

    /// <summary>Counts an attempt on <paramref name="deployment"/> and starts its span (the current one from here on).</summary>
    public AttemptContext AttemptStarted(Deployment deployment)
    {
        Attempts++;
        return new AttemptContext(RequestId) { Activity = GatewayTracing.StartAttempt(_activity, deployment, Attempts) };
    }

    /// <summary>The answer broke on <paramref name="from"/> after <paramref name="atChars"/> characters and continues on <paramref name="to"/>.</summary>
    public void Resumed(Deployment from, Deployment to, int atChars, string reason)
    {
        (_resumes ??= []).Add(new ResumedAt(from.Id, to.Id, atChars, reason));
        metrics.Resumed(Request.Model, from.Id, to.Id, reason);
        GatewayTracing.Resumed(_activity, from, to, atChars, reason);
    }

    public void FirstToken() => TimeToFirstToken ??= Elapsed;

    public void AttemptFailed(Deployment deployment, UpstreamException failure, AttemptContext context)
    {
        _tried.Add($"{deployment.Id} ({failure.Reason})");
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

    public void Succeeded(RouteInfo route, TokenUsage? usage, AttemptContext context) =>
        Finish(route.Deployment, route.Fallback, 200, null, usage, context);

    /// <summary>The call failed (<paramref name="deployment"/> is the last one that answered, if any).</summary>
    public void Failed(Deployment? deployment, bool fallback, int status, string errorType, string message, TokenUsage? usage = null, AttemptContext? context = null) =>
        Finish(deployment, fallback, status, new CallError(errorType, message), usage, context);

    private void Finish(Deployment? deployment, bool fallback, int status, CallError? error, TokenUsage? usage, AttemptContext? context)
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
        owner.Finished?.Invoke(charged ? tokens.Total : 0);
        // The same rule for money: a call that failed before any token was produced costs nothing.
        decimal? cost = deployment?.Price is { } price ? (charged ? price.CostOf(tokens) : 0) : null;
        var record = new LlmCallRecord
        {
            Timestamp = time.GetUtcNow(),
            RequestId = RequestId,
            Alias = Request.Model,
            UserId = owner.UserId,
            KeyName = owner.KeyName,
            Deployment = deployment?.Id,
            ProviderModel = deployment?.ProviderModel,
            ResponseModel = context?.ResponseModel,
            Stream = Request.Stream,
            Tokens = new TokenCounts(tokens.Prompt, tokens.Completion, tokens.Total, tokens.Estimated),
            LatencyMs = Milliseconds(elapsed),
            TtftMs = TimeToFirstToken is { } ttft ? Milliseconds(ttft) : null,
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
        metrics.Request(Request.Model, deployment?.Id, error is null ? "success" : error.Type, fallback);
        if (cost is { } spent && deployment is not null)
        {
            metrics.Cost(Request.Model, deployment.Id, spent);
            if (owner.KeyHash is { } key)
            {
                spend.Add(key, spent);
            }
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

    private static double Milliseconds(TimeSpan span) => Math.Round(span.TotalMilliseconds, 2);
}
