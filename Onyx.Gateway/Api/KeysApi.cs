using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.HttpResults;
using Onyx.Gateway.Auth;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Routing;
using Onyx.Gateway.Spend;

namespace Onyx.Gateway.Api;

/// <summary>
/// LiteLLM's key management: <c>POST /key/generate</c>, <c>GET /key/info</c>, <c>POST /key/delete</c>. Generating
/// and deleting need the master key; a key may read its own info. The key is returned once, at generation.
/// </summary>
internal static partial class KeysApi
{
    public static IEndpointRouteBuilder MapKeysApi(this IEndpointRouteBuilder app)
    {
        var keys = app.MapGroup("/key");
        keys.MapPost("/generate", Generate).RequireAuthorization(AuthExtensions.AdminPolicy);
        keys.MapPost("/delete", Delete).RequireAuthorization(AuthExtensions.AdminPolicy);
        keys.MapGet("/info", Info).RequireAuthorization(AuthExtensions.CallerPolicy);
        return app;
    }

    internal static async Task<Results<Ok<GeneratedKey>, OpenAiErrorResult>> Generate(
        HttpContext context, KeyRegistry keys, RoutingTable routing, TimeProvider time)
    {
        var (request, error) = await ReadAsync(context, KeysJsonContext.Default.GenerateKeyRequest);
        if (error is not null)
        {
            return error;
        }
        request ??= new GenerateKeyRequest();
        if (request.UserId is { } user && (string.IsNullOrWhiteSpace(user) || user.Length > 256))
        {
            return Invalid("'user_id' must be a non-empty string of at most 256 characters.", "user_id");
        }
        if (request.RpmLimit < 0 || request.TpmLimit < 0 || request.MaxParallelRequests < 0)
        {
            return Invalid("'rpm_limit', 'tpm_limit' and 'max_parallel_requests' must not be negative.", null);
        }
        if (request.Models?.FirstOrDefault(m => !routing.TryGetChain(m, out _)) is { } unknown)
        {
            return Invalid($"'models' names '{unknown}', which this gateway does not serve.", "models");
        }

        var now = time.GetUtcNow();
        DateTimeOffset? expires = request.Expires;
        if (request.Duration is { } duration)
        {
            if (!TryParseDuration(duration, out var span))
            {
                return Invalid("'duration' must be a number and a unit: s, m, h or d (e.g. \"30d\").", "duration");
            }
            expires = now + span;
        }
        if (expires <= now)
        {
            return Invalid("The key would already be expired.", request.Duration is null ? "expires" : "duration");
        }

        var key = ApiKeys.Generate();
        var hash = ApiKeys.Hash(key);
        var record = new ApiKeyRecord
        {
            Hash = hash,
            KeyName = ApiKeys.Name(key),
            KeyAlias = request.KeyAlias,
            // A key without a user is its own user: its limits are its own.
            UserId = request.UserId ?? "key-" + hash[..12],
            Models = request.Models ?? [],
            RpmLimit = request.RpmLimit,
            TpmLimit = request.TpmLimit,
            MaxParallelRequests = request.MaxParallelRequests,
            Expires = expires,
            CreatedAt = now,
            Metadata = request.Metadata,
        };
        await keys.SaveAsync(record, context.RequestAborted);
        return TypedResults.Ok(new GeneratedKey(key, record));
    }

    internal static async Task<Results<Ok<KeyInfo>, OpenAiErrorResult>> Info(HttpContext context, KeyRegistry keys, SpendTracker spend, string? key)
    {
        var caller = context.GetCaller();
        string hash;
        if (string.IsNullOrEmpty(key))
        {
            if (caller.KeyHash is null)
            {
                return Invalid("Name the key: GET /key/info?key=<key or its token>.", "key");
            }
            hash = caller.KeyHash;
        }
        else
        {
            hash = ApiKeys.IsHash(key) ? key : ApiKeys.Hash(key);
        }
        if (!caller.IsMaster && hash != caller.KeyHash)
        {
            return new OpenAiErrorResult(StatusCodes.Status403Forbidden,
                new OpenAiError("A key may read only its own info; other keys need the master key.", OpenAiErrorTypes.Permission, "key", "master_key_required"));
        }
        if (await keys.FindAsync(hash, context.RequestAborted) is not { } record)
        {
            return NotFound();
        }
        decimal? spent;
        try
        {
            spent = await spend.GetAsync(hash, context.RequestAborted);
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
        {
            // The key's record answers the question; its spend is left out while the store cannot be read.
            spent = null;
        }
        return TypedResults.Ok(new KeyInfo(record.Hash, record with { Spend = spent }));
    }

    internal static async Task<Results<Ok<DeletedKeys>, OpenAiErrorResult>> Delete(HttpContext context, KeyRegistry keys)
    {
        var (request, error) = await ReadAsync(context, KeysJsonContext.Default.DeleteKeysRequest);
        if (error is not null)
        {
            return error;
        }
        if (request?.Keys is not { Count: > 0 } given)
        {
            return Invalid("'keys' must list the keys (or their tokens) to delete.", "keys");
        }
        var hashes = given.Select(k => ApiKeys.IsHash(k) ? k : ApiKeys.Hash(k)).ToList();
        if (hashes.FirstOrDefault(keys.IsConfigured) is not null)
        {
            return Invalid("A key declared in the config file is removed by editing the file, not through /key/delete.", "keys");
        }
        var deleted = new List<string>();
        for (var i = 0; i < given.Count; i++)
        {
            if (await keys.DeleteAsync(hashes[i], context.RequestAborted))
            {
                deleted.Add(given[i]);
            }
        }
        return deleted.Count == 0 ? NotFound() : TypedResults.Ok(new DeletedKeys(deleted));
    }

    /// <summary>LiteLLM's durations: <c>30s</c>, <c>15m</c>, <c>12h</c>, <c>30d</c>.</summary>
    internal static bool TryParseDuration(string text, out TimeSpan duration)
    {
        duration = default;
        if (text.Length < 2 || !double.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.Float, CultureInfo.InvariantCulture, out var amount) || amount <= 0)
        {
            return false;
        }
        double? seconds = text[^1] switch
        {
            's' => amount,
            'm' => amount * 60,
            'h' => amount * 3600,
            'd' => amount * 86400,
            _ => null,
        };
        if (seconds is not { } total || total > TimeSpan.MaxValue.TotalSeconds / 2)
        {
            return false;
        }
        duration = TimeSpan.FromSeconds(total);
        return true;
    }

    private static async Task<(T? Value, OpenAiErrorResult? Error)> ReadAsync<T>(HttpContext context, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
    {
        if (context.Request.ContentLength == 0)
        {
            return (default, null);
        }
        try
        {
            return (await JsonSerializer.DeserializeAsync(context.Request.Body, type, context.RequestAborted), null);
        }
        catch (JsonException ex)
        {
            return (default, Invalid($"The request body is not valid: {ex.Message}", ex.Path));
        }
    }

    private static OpenAiErrorResult NotFound() => new(StatusCodes.Status404NotFound,
        new OpenAiError("No such key.", OpenAiErrorTypes.NotFound, "key", "key_not_found"));

    private static OpenAiErrorResult Invalid(string message, string? param) => new(StatusCodes.Status400BadRequest,
        new OpenAiError(message, OpenAiErrorTypes.InvalidRequest, param, "invalid_key_request"));
}

internal sealed record GenerateKeyRequest
{
    [JsonPropertyName("user_id")] public string? UserId { get; init; }
    [JsonPropertyName("key_alias")] public string? KeyAlias { get; init; }
    [JsonPropertyName("models")] public List<string>? Models { get; init; }
    [JsonPropertyName("rpm_limit")] public int? RpmLimit { get; init; }
    [JsonPropertyName("tpm_limit")] public int? TpmLimit { get; init; }
    [JsonPropertyName("max_parallel_requests")] public int? MaxParallelRequests { get; init; }
    [JsonPropertyName("duration")] public string? Duration { get; init; }
    [JsonPropertyName("expires")] public DateTimeOffset? Expires { get; init; }
    [JsonPropertyName("metadata")] public JsonObject? Metadata { get; init; }
}

/// <summary>The answer to <c>/key/generate</c>: the key itself (shown this once) and its record.</summary>
internal sealed record GeneratedKey(
    [property: JsonPropertyName("key")] string Key,
    [property: JsonPropertyName("info")] ApiKeyRecord Info)
{
    [JsonPropertyName("token")] public string Token => Info.Hash;
    [JsonPropertyName("key_name")] public string KeyName => Info.KeyName;
    [JsonPropertyName("user_id")] public string UserId => Info.UserId;
    [JsonPropertyName("expires")] public DateTimeOffset? Expires => Info.Expires;
}

internal sealed record KeyInfo(
    [property: JsonPropertyName("key")] string Token,
    [property: JsonPropertyName("info")] ApiKeyRecord Info);

internal sealed record DeleteKeysRequest
{
    [JsonPropertyName("keys")] public List<string>? Keys { get; init; }
}

internal sealed record DeletedKeys([property: JsonPropertyName("deleted_keys")] List<string> Keys);

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(GenerateKeyRequest))]
[JsonSerializable(typeof(GeneratedKey))]
[JsonSerializable(typeof(KeyInfo))]
[JsonSerializable(typeof(DeleteKeysRequest))]
[JsonSerializable(typeof(DeletedKeys))]
internal sealed partial class KeysJsonContext : JsonSerializerContext;
