using System.Text.Json;
using System.Text.Json.Serialization;

namespace Onyx.Gateway.Model;

/// <summary>
/// What became of one call, as Routing hands it to every <see cref="ICallObserver"/>: who asked, which deployments
/// were tried and how each went, tokens, cost, timings and the outcome. Never holds a key.
/// </summary>
internal sealed record CallRecord
{
    public required DateTimeOffset Timestamp { get; init; }
    public required string RequestId { get; init; }
    public required string Alias { get; init; }
    /// <summary>The user the call counts against (the API key's user; never the key).</summary>
    public string? UserId { get; init; }
    /// <summary>The key's masked name (<c>sk-...x4Qz</c>), alias or <c>master key</c>.</summary>
    public string? KeyName { get; init; }
    /// <summary>The request's own <c>user</c> field (OpenAI's end user).</summary>
    public string? EndUser { get; init; }
    public string? ClientAddress { get; init; }
    /// <summary>The deployment that answered (or the last one that was called, when none did).</summary>
    public string? Deployment { get; init; }
    /// <summary>That deployment's provider (<c>together_ai</c>, <c>ollama</c>, …) and model.</summary>
    public string? Provider { get; init; }
    public string? ProviderModel { get; init; }
    /// <summary>The model name the upstream reported.</summary>
    public string? ResponseModel { get; init; }
    public required bool Stream { get; init; }
    public required int Status { get; init; }
    /// <summary>Null when the call succeeded.</summary>
    public CallError? Error { get; init; }
    public bool Success => Error is null;
    public required bool Fallback { get; init; }
    /// <summary>How many upstream calls were made (skipped deployments not counted).</summary>
    public required int AttemptCount { get; init; }
    /// <summary>Every deployment of the chain that was considered, in order, and what became of it.</summary>
    public required IReadOnlyList<AttemptStep> Steps { get; init; }
    public required TokenCounts Tokens { get; init; }
    /// <summary>What the call cost in US dollars, from its deployments' prices (null when none has one).</summary>
    public decimal? CostUsd { get; init; }
    public required TimeSpan Duration { get; init; }
    public TimeSpan? TimeToFirstToken { get; init; }
    /// <summary>Where a streamed answer broke and which deployment continued it (null when it never broke).</summary>
    public IReadOnlyList<ResumedAt>? Resumed { get; init; }
    /// <summary>The prompt and the answer's text, only when an observer <see cref="ICallObserver.WantsContent"/>.</summary>
    public CallContent? Content { get; init; }

    public double LatencyMs => Milliseconds(Duration);

    public double? TtftMs => TimeToFirstToken is { } ttft ? Milliseconds(ttft) : null;

    public static double Milliseconds(TimeSpan span) => Math.Round(span.TotalMilliseconds, 2);
}

/// <summary>One failed attempt within a call, with the reason the router moved on.</summary>
internal sealed record AttemptFailure
{
    public required DateTimeOffset Timestamp { get; init; }
    public required string RequestId { get; init; }
    public required string Alias { get; init; }
    public required string Deployment { get; init; }
    /// <summary>The attempt's number within the call, from 1.</summary>
    public required int AttemptNumber { get; init; }
    /// <summary>The failure's kind: <c>connect</c>, <c>timeout</c>, <c>status</c>, <c>stream_broken</c>, …</summary>
    public required string Kind { get; init; }
    /// <summary>The finer label: <c>http_503</c>, <c>timeout</c>, <c>first_token_timeout</c>, …</summary>
    public required string Reason { get; init; }
    public int? StatusCode { get; init; }
    /// <summary>Safe to show: no keys, no prompt text.</summary>
    public required string Message { get; init; }
    public required double ElapsedMs { get; init; }
}

/// <summary>
/// One deployment of the chain and what became of it: <c>success</c>, <c>failed</c> (with the reason the router
/// moved on), <c>skipped</c> (never called: breaker open, unavailable, overloaded) or the call's error type when
/// the call ended on it (a client error the upstream returned, a client that went away).
/// </summary>
internal sealed record AttemptStep(
    [property: JsonPropertyName("deployment")] string Deployment,
    [property: JsonPropertyName("outcome")] string Outcome,
    [property: JsonPropertyName("reason")] string? Reason,
    [property: JsonPropertyName("status")] int? Status,
    /// <summary>Milliseconds from the request's start to this outcome.</summary>
    [property: JsonPropertyName("elapsed_ms")] double ElapsedMs);

internal sealed record ResumedAt(
    [property: JsonPropertyName("from")] string From,
    [property: JsonPropertyName("to")] string To,
    [property: JsonPropertyName("at_chars")] int AtChars,
    [property: JsonPropertyName("reason")] string Reason,
    [property: JsonPropertyName("how")] string How);

internal sealed record TokenCounts(
    [property: JsonPropertyName("prompt")] int Prompt,
    [property: JsonPropertyName("completion")] int Completion,
    [property: JsonPropertyName("total")] int Total,
    [property: JsonPropertyName("estimated")] bool Estimated);

internal sealed record CallError(
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("message")] string Message);

/// <summary>The request's messages and the text the client received.</summary>
internal sealed record CallContent(
    [property: JsonPropertyName("messages")] JsonElement Messages,
    [property: JsonPropertyName("answer")] string? Answer);
