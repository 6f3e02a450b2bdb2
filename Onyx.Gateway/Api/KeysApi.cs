using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Onyx.Gateway.Auth;
using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Api;

/// <summary>
/// LiteLLM's key management: <c>POST /key/generate</c>, <c>POST /key/update</c>, <c>GET /key/list</c>,
/// <c>GET /key/info</c>, <c>POST /key/delete</c>. All but reading a key's own info need the master key. The key is
/// returned once, at generation; listings name keys by their hash. Every body field is acted on or refused by name.
/// </summary>
internal static partial class KeysApi
{
    private static readonly JsonDocumentOptions ParseOptions = new() { MaxDepth = 16, AllowDuplicateProperties = false };

    public static IEndpointRouteBuilder MapKeysApi(this IEndpointRouteBuilder app)
    {
        var keys = app.MapGroup("/key");
        keys.MapPost("/generate", Generate).RequireAuthorization(AuthExtensions.AdminPolicy);
        keys.MapPost("/update", Update).RequireAuthorization(AuthExtensions.AdminPolicy);
        keys.MapPost("/delete", Delete).RequireAuthorization(AuthExtensions.AdminPolicy);
        keys.MapGet("/list", List).RequireAuthorization(AuthExtensions.AdminPolicy);
        keys.MapGet("/info", Info).RequireAuthorization(AuthExtensions.CallerPolicy);
        return app;
    }

    internal static async Task<Results<Ok<GeneratedKey>, OpenAiErrorResult>> Generate(HttpContext context, KeyManagement management)
    {
        var (body, error) = await ReadAsync(context);
        if (error is not null)
        {
            return error;
        }
        var (key, invalid) = await management.GenerateAsync(body, context.RequestAborted);
        return invalid is not null ? invalid : TypedResults.Ok(key!);
    }

    /// <summary>
    /// LiteLLM's <c>/key/update</c>: <c>key</c> (the key or its hash) and the fields to change; a field set to
    /// <c>null</c> is removed (a limit or budget then no longer applies). A key's user cannot change: its limits and
    /// budget are counted under it.
    /// </summary>
    internal static async Task<Results<Ok<KeyInfo>, OpenAiErrorResult>> Update(HttpContext context, KeyManagement management)
    {
        var (body, error) = await ReadAsync(context);
        if (error is not null)
        {
            return error;
        }
        var (info, invalid) = await management.UpdateAsync(body, context.RequestAborted);
        return invalid is not null ? invalid : TypedResults.Ok(info!);
    }

    internal static async Task<Results<Ok<KeyInfo>, OpenAiErrorResult>> Info(HttpContext context, KeyManagement management, string? key)
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
        if (await management.FindAsync(hash, context.RequestAborted) is not { } record)
        {
            return KeyManagement.NotFound();
        }
        return TypedResults.Ok(new KeyInfo(record.Hash, record));
    }

    /// <summary>
    /// LiteLLM's <c>/key/list</c>: the keys' tokens (hashes), or with <c>return_full_object=true</c> their records with
    /// spend and budget windows — never a key itself. Filters: <c>user_id</c>, <c>key_alias</c>, <c>key_hash</c>; pages:
    /// <c>page</c> (from 1) and <c>size</c> (at most 1000).
    /// </summary>
    internal static async Task<Results<Ok<KeyList>, OpenAiErrorResult>> List(HttpContext context, KeyManagement management)
    {
        var query = context.Request.Query;
        foreach (var name in query.Keys)
        {
            if (name is not ("page" or "size" or "user_id" or "key_alias" or "key_hash" or "return_full_object"))
            {
                return Invalid($"'{name}' is not a /key/list parameter this gateway implements (page, size, user_id, key_alias, key_hash, return_full_object).", name);
            }
        }
        if (!TryInt(query["page"], 1, out var page) || page < 1)
        {
            return Invalid("'page' must be a whole number from 1.", "page");
        }
        if (!TryInt(query["size"], 100, out var size) || size is < 1 or > 1000)
        {
            return Invalid("'size' must be a whole number from 1 to 1000.", "size");
        }
        var full = query["return_full_object"].ToString() is var flag && flag is "true" or "True";
        if (!full && flag is not ("" or "false" or "False"))
        {
            return Invalid("'return_full_object' must be true or false.", "return_full_object");
        }
        var userId = query["user_id"].ToString();
        var alias = query["key_alias"].ToString();
        var keyHash = query["key_hash"].ToString();
        var all = (await management.ListAsync(context.RequestAborted))
            .Where(k => userId.Length == 0 || k.UserId == userId)
            .Where(k => alias.Length == 0 || k.KeyAlias == alias)
            .Where(k => keyHash.Length == 0 || k.Hash == keyHash)
            .ToList();
        var pageOf = all.Skip((page - 1) * size).Take(size).ToList();
        List<object> listed = full
            ? [.. await Task.WhenAll(pageOf.Select(k => management.WithSpendAsync(k, context.RequestAborted)))]
            : [.. pageOf.Select(k => k.Hash)];
        return TypedResults.Ok(new KeyList(listed, all.Count, page, Math.Max(1, (all.Count + size - 1) / size)));
    }

    internal static async Task<Results<Ok<DeletedKeys>, OpenAiErrorResult>> Delete(HttpContext context, KeyManagement management)
    {
        var (body, error) = await ReadAsync(context);
        if (error is not null)
        {
            return error;
        }
        var given = new List<string>();
        foreach (var property in body.ValueKind == JsonValueKind.Object ? body.EnumerateObject() : default)
        {
            if (property.Name != "keys")
            {
                return Unknown(property.Name, "keys");
            }
            if (property.Value.ValueKind != JsonValueKind.Array || property.Value.EnumerateArray().Any(k => k.ValueKind != JsonValueKind.String || k.GetString() is not { Length: > 0 }))
            {
                return Invalid("'keys' must list the keys (or their tokens) to delete.", "keys");
            }
            given.AddRange(property.Value.EnumerateArray().Select(k => k.GetString()!));
        }
        if (given.Count == 0)
        {
            return Invalid("'keys' must list the keys (or their tokens) to delete.", "keys");
        }
        var (deleted, invalid) = await management.DeleteAsync(given, context.RequestAborted);
        return invalid is not null ? invalid : TypedResults.Ok(new DeletedKeys(deleted));
    }

    private static bool TryInt(Microsoft.Extensions.Primitives.StringValues value, int fallback, out int result)
    {
        result = fallback;
        return value.Count == 0 || int.TryParse(value.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out result);
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

    /// <summary>The body as JSON (an empty body is an empty object); a body that is not JSON is a 400.</summary>
    private static async Task<(JsonElement Body, OpenAiErrorResult? Error)> ReadAsync(HttpContext context)
    {
        if (context.Request.ContentLength == 0)
        {
            return (default, null);
        }
        try
        {
            using var document = await JsonDocument.ParseAsync(context.Request.Body, ParseOptions, context.RequestAborted);
            var body = document.RootElement.Clone();
            return body.ValueKind is JsonValueKind.Object or JsonValueKind.Null
                ? (body, null)
                : (default, Invalid("The request body must be a JSON object.", null));
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            return (default, Invalid($"The request body is not valid JSON: {ex.Message}", null));
        }
    }

    internal static OpenAiErrorResult Unknown(string field, string known) =>
        Invalid($"'{field}' is not a field this gateway implements; it takes: {known}.", field);

    internal static OpenAiErrorResult Invalid(string message, string? param) => new(StatusCodes.Status400BadRequest,
        new OpenAiError(message, OpenAiErrorTypes.InvalidRequest, param, "invalid_key_request"));
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

/// <summary>LiteLLM's <c>/key/list</c> answer: tokens (or records), the count of all matching keys, the page.</summary>
internal sealed record KeyList(
    [property: JsonPropertyName("keys")] List<object> Keys,
    [property: JsonPropertyName("total_count")] int TotalCount,
    [property: JsonPropertyName("current_page")] int CurrentPage,
    [property: JsonPropertyName("total_pages")] int TotalPages);

internal sealed record DeletedKeys([property: JsonPropertyName("deleted_keys")] List<string> Keys);

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(GeneratedKey))]
[JsonSerializable(typeof(KeyInfo))]
[JsonSerializable(typeof(KeyList))]
[JsonSerializable(typeof(ApiKeyRecord))]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(DeletedKeys))]
[JsonSerializable(typeof(JsonObject))]
internal sealed partial class KeysJsonContext : JsonSerializerContext;
