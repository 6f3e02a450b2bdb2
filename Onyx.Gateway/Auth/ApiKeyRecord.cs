using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Onyx.Gateway.Auth;

/// <summary>A user API key as stored: its hash and what it may do, never the key itself.</summary>
internal sealed record ApiKeyRecord
{
    /// <summary>The key's SHA-256 (LiteLLM calls it the key's <c>token</c>).</summary>
    [JsonPropertyName("token")] public required string Hash { get; init; }

    [JsonPropertyName("key_name")] public required string KeyName { get; init; }

    [JsonPropertyName("key_alias")] public string? KeyAlias { get; init; }

    [JsonPropertyName("user_id")] public required string UserId { get; init; }

    /// <summary>The aliases the key may call; empty means all.</summary>
    [JsonPropertyName("models")] public IReadOnlyList<string> Models { get; init; } = [];

    [JsonPropertyName("rpm_limit")] public int? RpmLimit { get; init; }

    [JsonPropertyName("tpm_limit")] public int? TpmLimit { get; init; }

    [JsonPropertyName("max_parallel_requests")] public int? MaxParallelRequests { get; init; }

    [JsonPropertyName("expires")] public DateTimeOffset? Expires { get; init; }

    /// <summary>LiteLLM's <c>max_budget</c>: US dollars the key may spend per <see cref="BudgetDuration"/> (or in all).</summary>
    [JsonPropertyName("max_budget")] public decimal? MaxBudget { get; init; }

    /// <summary>LiteLLM's <c>budget_duration</c>: how often the key's spend starts again from 0 (<c>30s</c>, <c>1h</c>, <c>30d</c>).</summary>
    [JsonPropertyName("budget_duration")] public string? BudgetDuration { get; init; }

    /// <summary>LiteLLM's <c>soft_budget</c>: spend at which the gateway warns (once per crossing) but still serves.</summary>
    [JsonPropertyName("soft_budget")] public decimal? SoftBudget { get; init; }

    /// <summary>LiteLLM's <c>model_max_budget</c>: a budget per alias, each with its own window.</summary>
    [JsonPropertyName("model_max_budget")] public IReadOnlyDictionary<string, ModelBudget>? ModelMaxBudget { get; init; }

    [JsonPropertyName("created_at")] public DateTimeOffset CreatedAt { get; init; }

    [JsonPropertyName("metadata")] public JsonObject? Metadata { get; init; }

    /// <summary><c>config</c> for keys declared in the config file (which the API cannot delete), else <c>api</c>.</summary>
    [JsonPropertyName("source")] public string Source { get; init; } = "api";

    /// <summary>
    /// What the key's calls have cost in its current budget window (in all, without <see cref="BudgetDuration"/>), in
    /// US dollars: filled in by <c>/key/info</c> and <c>/key/list</c>, never stored here.
    /// </summary>
    [JsonPropertyName("spend")] public decimal? Spend { get; init; }

    /// <summary>When the key's budget window ends and its spend starts again from 0: filled in like <see cref="Spend"/>.</summary>
    [JsonPropertyName("budget_reset_at")] public DateTimeOffset? BudgetResetAt { get; init; }

    /// <summary>Spend per alias of <see cref="ModelMaxBudget"/> in its window: filled in like <see cref="Spend"/>.</summary>
    [JsonPropertyName("model_spend")] public IReadOnlyDictionary<string, decimal>? ModelSpend { get; init; }

    public bool ExpiredAt(DateTimeOffset now) => Expires is { } expires && expires <= now;
}

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ApiKeyRecord))]
internal sealed partial class AuthJsonContext : JsonSerializerContext;
