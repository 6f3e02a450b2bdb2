using System.Text.Json.Serialization;
using Onyx.Gateway.Model;

namespace Onyx.Gateway.Audit;

/// <summary>
/// The durable record of one LLM request: who asked (the key's name and user, never the key), from where, for
/// which alias, every deployment tried and how it went, tokens, cost, timings and the outcome. The prompt and the
/// answer only with <c>Onyx:Audit:IncludeContent</c>.
/// </summary>
internal sealed record AuditRecord
{
    /// <summary>Unique per record (a version-7 GUID: time-ordered), so a replay can tell what Redis already has.</summary>
    [JsonPropertyName("audit_id")] public required string AuditId { get; init; }
    [JsonPropertyName("timestamp")] public required DateTimeOffset Timestamp { get; init; }
    [JsonPropertyName("request_id")] public required string RequestId { get; init; }
    [JsonPropertyName("replica")] public required string Replica { get; init; }
    /// <summary>The key's masked name (<c>sk-...x4Qz</c>), alias or <c>master key</c>.</summary>
    [JsonPropertyName("key_name")] public string? KeyName { get; init; }
    [JsonPropertyName("user_id")] public string? UserId { get; init; }
    /// <summary>The request's own <c>user</c> field (OpenAI's end user).</summary>
    [JsonPropertyName("end_user")] public string? EndUser { get; init; }
    [JsonPropertyName("client_address")] public string? ClientAddress { get; init; }
    [JsonPropertyName("alias")] public required string Alias { get; init; }
    [JsonPropertyName("stream")] public required bool Stream { get; init; }
    [JsonPropertyName("status")] public required int Status { get; init; }
    [JsonPropertyName("success")] public required bool Success { get; init; }
    [JsonPropertyName("error")] public CallError? Error { get; init; }
    /// <summary>The deployment that answered (or the last one tried, when none did).</summary>
    [JsonPropertyName("deployment")] public string? Deployment { get; init; }
    [JsonPropertyName("response_model")] public string? ResponseModel { get; init; }
    [JsonPropertyName("fallback")] public required bool Fallback { get; init; }
    [JsonPropertyName("attempts")] public required IReadOnlyList<AttemptStep> Attempts { get; init; }
    [JsonPropertyName("tokens")] public required TokenCounts Tokens { get; init; }
    /// <summary>What the call cost, when the gateway knows the deployment's price; null otherwise.</summary>
    [JsonPropertyName("cost_usd"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public decimal? CostUsd { get; init; }
    [JsonPropertyName("latency_ms")] public required double LatencyMs { get; init; }
    [JsonPropertyName("ttft_ms")] public double? TtftMs { get; init; }
    [JsonPropertyName("resumed")] public IReadOnlyList<ResumedAt>? Resumed { get; init; }
    [JsonPropertyName("content")] public CallContent? Content { get; init; }
}

/// <summary>A page of <c>GET /audit</c>, newest first.</summary>
internal sealed record AuditPage(
    [property: JsonPropertyName("data")] IReadOnlyList<AuditRecord> Data,
    [property: JsonPropertyName("has_more")] bool HasMore,
    /// <summary>Pass as <c>cursor</c> for the next (older) page; null on the last page.</summary>
    [property: JsonPropertyName("next_cursor")] string? NextCursor)
{
    [JsonPropertyName("object")] public string Object => "list";
}

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AuditRecord))]
[JsonSerializable(typeof(AuditPage))]
internal sealed partial class AuditJsonContext : JsonSerializerContext;
