using System.Buffers;
using System.Collections.Frozen;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace Onyx.Gateway.OpenAi;

/// <summary>
/// A client's <c>/v1/chat/completions</c> body, checked and kept as the JSON it came in: a <see cref="JsonElement"/>
/// over the request's own bytes, with no object per field. Providers copy what they forward from it as raw JSON.
/// </summary>
internal sealed partial class ChatRequest
{
    private ChatRequest(JsonElement body, string model, JsonElement messages, bool stream, bool includeUsage, string? user,
        ProviderParameters providerParameters)
    {
        Body = body;
        ProviderParameters = providerParameters;
        User = user;
        Model = model;
        Messages = messages;
        Stream = stream;
        IncludeUsage = includeUsage;
    }

    /// <summary>
    /// The body as the client sent it (a JSON object); providers build their own upstream body from it. It owns its
    /// memory (not a pooled document), so the call log and the audit trail may read it after the response is done.
    /// </summary>
    public JsonElement Body { get; }

    /// <summary>The alias the client asked for.</summary>
    public string Model { get; }

    /// <summary>The <c>messages</c> array (not empty; every item checked).</summary>
    public JsonElement Messages { get; }

    public bool Stream { get; }

    /// <summary><c>stream_options.include_usage</c>: the client wants a final usage chunk.</summary>
    public bool IncludeUsage { get; }

    /// <summary>OpenAI's <c>user</c>: the end user inside the caller's application (may be rate-limited on its own).</summary>
    public string? User { get; }

    /// <summary>The provider-specific sampling parameters the client sent (<c>top_k</c>, …).</summary>
    public ProviderParameters ProviderParameters { get; }

    private static readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> Roles =
        FrozenSet.Create(StringComparer.Ordinal, "system", "developer", "user", "assistant", "tool", "function").GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>The content part types OpenAI defines; any other is refused rather than passed to a provider.</summary>
    private static readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> PartTypes =
        FrozenSet.Create(StringComparer.Ordinal, "text", "image_url", "input_audio", "file", "refusal").GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>
    /// The OpenAI chat fields an OpenAI-compatible upstream receives from the client's body (besides <c>model</c>,
    /// <c>stream</c> and <c>stream_options</c>, which the gateway writes itself). Anything else a client sends is
    /// accepted and ignored, as OpenAI does, but never forwarded: an unknown field makes some providers answer 400,
    /// and the gateway would then fail over for nothing.
    /// </summary>
    public static readonly FrozenSet<string> ForwardedFields = FrozenSet.Create(StringComparer.Ordinal,
        "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stop", "presence_penalty",
        "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "seed", "response_format", "tools", "tool_choice",
        "parallel_tool_calls", "functions", "function_call", "reasoning_effort", "user");

    /// <summary>
    /// Per-request provider settings LiteLLM accepts in the body. A gateway client must never choose where a
    /// request goes or with which credentials (that would let anyone use the gateway to reach any URL with any
    /// key), so they are refused with a 400 that names the field, instead of being silently ignored.
    /// </summary>
    public static readonly FrozenSet<string> RefusedOverrides = FrozenSet.Create(StringComparer.Ordinal,
        "api_base", "base_url", "api_key", "api_version", "api_type", "custom_llm_provider", "extra_headers", "headers",
        "extra_body", "extra_query", "organization", "deployment_id", "azure_ad_token", "azure_ad_token_provider",
        "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_region_name", "aws_profile_name",
        "vertex_project", "vertex_location", "vertex_credentials", "litellm_params", "litellm_metadata", "model_list",
        "fallbacks", "context_window_fallbacks", "mock_response", "user_config", "input_cost_per_token",
        "output_cost_per_token", "proxy_server_request", "secret_fields");

    private static readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> Forwarded = ForwardedFields.GetAlternateLookup<ReadOnlySpan<char>>();

    private static readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> Refused = RefusedOverrides.GetAlternateLookup<ReadOnlySpan<char>>();

    private static readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> ProviderSpecific =
        ProviderParameterNames.ByName.Keys.ToFrozenSet(StringComparer.Ordinal).GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>The longest name in the sets above: a longer name is none of them.</summary>
    private static readonly int MaxKnownLength = ForwardedFields.Concat(RefusedOverrides).Concat(Roles.Set).Concat(PartTypes.Set)
        .Concat(ProviderSpecific.Set).Max(name => name.Length);

    /// <summary>The longest <c>model</c> a request may name (aliases are short names).</summary>
    public const int MaxModelLength = 256;

    /// <summary>Messages a request may carry unless <c>Onyx:Limits:MaxMessages</c> says otherwise.</summary>
    public const int DefaultMaxMessages = 2048;


    /// <summary>The output tokens the client asked for (<c>max_completion_tokens</c>, else <c>max_tokens</c>), if any.</summary>
    public long? RequestedMaxTokens =>
        (TryGetField(Body, "max_completion_tokens"u8, out var value) || TryGetField(Body, "max_tokens"u8, out value))
        && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var tokens) ? tokens : null;

    /// <summary>
    /// <paramref name="name"/>'s value in <paramref name="obj"/>. A JSON <c>null</c> counts as absent, as OpenAI
    /// treats it.
    /// </summary>
    public static bool TryGetField(JsonElement obj, ReadOnlySpan<byte> name, out JsonElement value)
    {
        if (obj.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null)
        {
            return true;
        }
        value = default;
        return false;
    }

    /// <summary>
    /// The name of one of the OpenAI fields an OpenAI-compatible upstream receives (<see cref="ForwardedFields"/>),
    /// or null: another field, which is not forwarded.
    /// </summary>
    public static string? ForwardedName(JsonProperty property) => KnownName(property, Forwarded);

    /// <summary>The provider-specific parameter <paramref name="property"/> is (<see cref="ProviderParameters.None"/>: none of them).</summary>
    public static ProviderParameters ProviderParameterOf(JsonProperty property) =>
        KnownName(property, ProviderSpecific) is { } name ? ProviderParameterNames.ByName[name] : ProviderParameters.None;

    /// <summary>The property's name if it is in <paramref name="names"/>, found without making a string of it.</summary>
    private static string? KnownName(JsonProperty property, FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> names)
    {
        var raw = JsonMarshal.GetRawUtf8PropertyName(property);
        return raw.Contains((byte)'\\') ? Known(property.Name, names) : Known(raw, names);
    }

    /// <summary>The string value if it is in <paramref name="names"/>, found without making a string of it.</summary>
    private static string? KnownValue(JsonElement value, FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> names)
    {
        if (value.ValueKind != JsonValueKind.String)
        {
            return null;
        }
        var raw = JsonMarshal.GetRawUtf8Value(value)[1..^1];
        return raw.Contains((byte)'\\') ? Known(value.GetString(), names) : Known(raw, names);
    }

    private static string? Known(ReadOnlySpan<byte> unescaped, FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> names)
    {
        // Every known name is short ASCII: anything longer, or not ASCII, is none of them.
        Span<char> chars = stackalloc char[MaxKnownLength];
        return unescaped.Length <= MaxKnownLength && Ascii.ToUtf16(unescaped, chars, out var written) == OperationStatus.Done
            ? Known(chars[..written], names)
            : null;
    }

    private static string? Known(ReadOnlySpan<char> text, FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> names) =>
        names.TryGetValue(text, out var name) ? name : null;
}
