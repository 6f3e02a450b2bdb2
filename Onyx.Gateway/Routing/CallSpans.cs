using System.Diagnostics;
using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;

namespace Onyx.Gateway.Routing;

/// <summary>
/// The gateway's spans, with the OpenTelemetry GenAI attributes: one per chat call (<c>chat {alias}</c>, under
/// ASP.NET Core's request span) and one per upstream attempt beneath it (<c>chat {provider model}</c>, a client
/// span), which says how the attempt ended and why the gateway moved on. The HttpClient span of the upstream
/// request is the attempt's child, and its <c>traceparent</c> goes upstream. No prompt or answer text.
/// </summary>
internal static class CallSpans
{
    public const string SourceName = "Onyx.Gateway";

    public static readonly ActivitySource Source = new(SourceName);

    public static Activity? StartCall(ChatRequest request, string requestId)
    {
        // The span's name is built only when something listens: without a trace exporter, a request makes no string for it.
        if (!Source.HasListeners())
        {
            return null;
        }
        var activity = Source.StartActivity("chat " + request.Model, ActivityKind.Internal);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("gen_ai.operation.name", "chat");
            activity.SetTag("gen_ai.request.model", request.Model);
            activity.SetTag("onyx.alias", request.Model);
            activity.SetTag("onyx.request_id", requestId);
            activity.SetTag("onyx.stream", request.Stream);
        }
        return activity;
    }

    /// <summary>Starts an attempt's span under the call's (explicitly: a resume starts outside the call's async flow).</summary>
    public static Activity? StartAttempt(Activity? call, Deployment deployment, int attempt)
    {
        if (!Source.HasListeners())
        {
            return null;
        }
        var activity = call is null
            ? Source.StartActivity("chat " + deployment.ProviderModel, ActivityKind.Client)
            : Source.StartActivity("chat " + deployment.ProviderModel, ActivityKind.Client, call.Context);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("gen_ai.operation.name", "chat");
            activity.SetTag("gen_ai.provider.name", deployment.Provider.Prefix);
            activity.SetTag("gen_ai.request.model", deployment.ProviderModel);
            activity.SetTag("server.address", deployment.ApiBase.Host);
            activity.SetTag("server.port", deployment.ApiBase.Port);
            activity.SetTag("onyx.deployment", deployment.Id);
            activity.SetTag("onyx.attempt", attempt);
        }
        return activity;
    }

    /// <summary>Ends a failed attempt's span: the failure's kind and reason, and that the gateway failed over from it.</summary>
    public static void AttemptFailed(AttemptContext context, UpstreamException failure)
    {
        if (context.Activity is not { } activity || activity.IsStopped)
        {
            return;
        }
        activity.SetTag("onyx.outcome", "failed");
        activity.SetTag("error.type", failure.Reason);
        activity.SetTag("onyx.failover.reason", failure.Reason);
        activity.SetTag("onyx.error.kind", failure.KindLabel);
        if (failure.StatusCode is { } status)
        {
            activity.SetTag("http.response.status_code", status);
        }
        // The message is safe to show (UpstreamException's contract): no keys, no prompt text.
        activity.SetStatus(ActivityStatusCode.Error, failure.Message);
        activity.Stop();
    }

    /// <summary>Ends an attempt's span another way: <c>success</c>, <c>abandoned</c> (a hedge's loser), <c>client_closed</c>, …</summary>
    public static void EndAttempt(AttemptContext? context, string outcome, TokenUsage? usage = null, string? errorType = null)
    {
        if (context?.Activity is not { } activity || activity.IsStopped)
        {
            return;
        }
        activity.SetTag("onyx.outcome", outcome);
        if (context.ResponseModel is { } responseModel)
        {
            activity.SetTag("gen_ai.response.model", responseModel);
        }
        if (usage is { } tokens)
        {
            activity.SetTag("gen_ai.usage.input_tokens", tokens.Prompt);
            activity.SetTag("gen_ai.usage.output_tokens", tokens.Completion);
        }
        if (errorType is not null)
        {
            activity.SetTag("error.type", errorType);
            activity.SetStatus(ActivityStatusCode.Error);
        }
        activity.Stop();
    }

    public static void EndCall(Activity? activity, CallRecord record)
    {
        if (activity is null || activity.IsStopped)
        {
            return;
        }
        if (activity.IsAllDataRequested)
        {
            activity.SetTag("onyx.outcome", record.Success ? "success" : record.Error?.Type);
            activity.SetTag("onyx.status", record.Status);
            activity.SetTag("onyx.deployment", record.Deployment);
            activity.SetTag("onyx.fallback", record.Fallback);
            activity.SetTag("onyx.attempts", record.AttemptCount);
            activity.SetTag("gen_ai.response.model", record.ResponseModel);
            activity.SetTag("gen_ai.usage.input_tokens", record.Tokens.Prompt);
            activity.SetTag("gen_ai.usage.output_tokens", record.Tokens.Completion);
            activity.SetTag("onyx.tokens.estimated", record.Tokens.Estimated);
            activity.SetTag("onyx.cost_usd", record.CostUsd is { } cost ? (double)cost : null);
            if (record.Resumed is { Count: > 0 } resumes)
            {
                activity.SetTag("onyx.resumes", resumes.Count);
            }
        }
        if (record.Error is { } error)
        {
            activity.SetTag("error.type", error.Type);
            activity.SetStatus(ActivityStatusCode.Error, error.Message);
        }
        activity.Stop();
    }

    /// <summary>A deployment passed over without an attempt (open breaker, unavailable, overloaded).</summary>
    public static void Skipped(Activity? call, Deployment deployment, string reason) =>
        call?.AddEvent(new ActivityEvent("onyx.deployment.skipped", tags: new ActivityTagsCollection
        {
            ["onyx.deployment"] = deployment.Id,
            ["onyx.reason"] = reason,
        }));

    public static void Resumed(Activity? call, Deployment from, Deployment to, int atChars, string reason) =>
        call?.AddEvent(new ActivityEvent("onyx.stream.resumed", tags: new ActivityTagsCollection
        {
            ["onyx.from"] = from.Id,
            ["onyx.to"] = to.Id,
            ["onyx.at_chars"] = atChars,
            ["onyx.reason"] = reason,
        }));
}
