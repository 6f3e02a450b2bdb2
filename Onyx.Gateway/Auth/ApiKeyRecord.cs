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

    [JsonPropertyName("created_at")] public DateTimeOffset CreatedAt { get; init; }

    [JsonPropertyName("metadata")] public JsonObject? Metadata { get; init; }

    /// <summary><c>config</c> for keys declared in the config file (which the API cannot delete), else <c>api</c>.</summary>
    [JsonPropertyName("source")] public string Source { get; init; } = "api";

    /// <summary>What the key's calls have cost so far, in US dollars: filled in by <c>/key/info</c>, never stored here.</summary>
    [JsonPropertyName("spend")] public decimal? Spend { get; init; }

    public bool ExpiredAt(DateTimeOffset now) => Expires is { } expires && expires <= now;
}

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ApiKeyRecord))]
internal sealed partial class AuthJsonContext : JsonSerializerContext;
