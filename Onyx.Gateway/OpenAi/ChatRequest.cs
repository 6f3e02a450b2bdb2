using System.Collections.Frozen;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Unicode;

namespace Onyx.Gateway.OpenAi;

/// <summary>A client's <c>/v1/chat/completions</c> body, checked and kept as JSON for forwarding.</summary>
internal sealed class ChatRequest
{
    private ChatRequest(JsonObject body, string model, JsonArray messages, bool stream, bool includeUsage, string? user)
    {
        Body = body;
        User = user;
        Model = model;
        Messages = messages;
        Stream = stream;
        IncludeUsage = includeUsage;
    }

    /// <summary>The body as the client sent it; providers build their own upstream body from it.</summary>
    public JsonObject Body { get; }

    /// <summary>The alias the client asked for.</summary>
    public string Model { get; }

    public JsonArray Messages { get; }

    public bool Stream { get; }

    /// <summary><c>stream_options.include_usage</c>: the client wants a final usage chunk.</summary>
    public bool IncludeUsage { get; }

    /// <summary>OpenAI's <c>user</c>: the end user inside the caller's application (may be rate-limited on its own).</summary>
    public string? User { get; }

    /// <summary>What the gateway tells a model that has no way to prefill its answer, to continue a cut one.</summary>
    public const string ContinueInstruction =
        "Your previous answer was cut off. Continue it exactly where it stopped, without repeating any of it and without any preamble.";

    /// <summary>
    /// This request, asking for the continuation of <paramref name="partial"/> — the answer so far — in the way
    /// the provider understands (<paramref name="style"/>).
    /// </summary>
    public ChatRequest WithPartialAnswer(string partial, Providers.ContinuationStyle style)
    {
        var body = (JsonObject)Body.DeepClone();
        var messages = (JsonArray)body["messages"]!;
        var assistant = new JsonObject { ["role"] = "assistant", ["content"] = partial };
        if (style == Providers.ContinuationStyle.PrefixFlag)
        {
            assistant["prefix"] = true;
        }
        // The JsonNode overload: the generic Add<T> needs reflection (a warning under Native AOT).
        messages.Add((JsonNode)assistant);
        if (style == Providers.ContinuationStyle.Instruction)
        {
            messages.Add((JsonNode)new JsonObject { ["role"] = "user", ["content"] = ContinueInstruction });
        }
        return new ChatRequest(body, Model, messages, Stream, IncludeUsage, User);
    }

    private static readonly FrozenSet<string> Roles = FrozenSet.Create(StringComparer.Ordinal, "system", "developer", "user", "assistant", "tool", "function");

    /// <summary>The content part types OpenAI defines; any other is refused rather than passed to a provider.</summary>
    private static readonly FrozenSet<string> PartTypes = FrozenSet.Create(StringComparer.Ordinal, "text", "image_url", "input_audio", "file", "refusal");

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

    /// <summary>Messages a request may carry unless <c>Onyx:Limits:MaxMessages</c> says otherwise.</summary>
    public const int DefaultMaxMessages = 2048;

    /// <summary>Parses and validates; on failure <paramref name="error"/> names the offending field.</summary>
    public static bool TryParse(JsonNode? node, out ChatRequest request, out OpenAiError error) =>
        TryParse(node, DefaultMaxMessages, out request, out error);

    /// <summary>Parses and validates; on failure <paramref name="error"/> names the offending field.</summary>
    public static bool TryParse(JsonNode? node, int maxMessages, out ChatRequest request, out OpenAiError error)
    {
        request = null!;
        if (node is not JsonObject body)
        {
            error = Invalid("The request body must be a JSON object.", null);
            return false;
        }
        // First, every string and property name must be real text: System.Text.Json reads them lazily and would
        // otherwise throw on invalid UTF-8 or a lone surrogate deep inside validation or a provider.
        if (!CheckText(body, out error))
        {
            return false;
        }
        foreach (var (name, _) in body)
        {
            if (RefusedOverrides.Contains(name))
            {
                error = new OpenAiError(
                    $"'{name}' cannot be set per request: the gateway decides where requests go and with which credentials.",
                    OpenAiErrorTypes.InvalidRequest, name, "unsupported_parameter");
                return false;
            }
        }
        if (!TryGetString(body, "model", out var model) || string.IsNullOrWhiteSpace(model))
        {
            error = Invalid("'model' is required and must be a non-empty string.", "model");
            return false;
        }
        if (body["messages"] is not JsonArray messages || messages.Count == 0)
        {
            error = Invalid("'messages' is required and must be a non-empty array.", "messages");
            return false;
        }
        if (messages.Count > maxMessages)
        {
            error = Invalid($"'messages' has {messages.Count} messages; this gateway accepts at most {maxMessages}.", "messages");
            return false;
        }
        for (var i = 0; i < messages.Count; i++)
        {
            if (!TryValidateMessage(messages[i], i, out error))
            {
                return false;
            }
        }

        var stream = false;
        if (body.TryGetPropertyValue("stream", out var streamNode) && streamNode is not null)
        {
            if (streamNode.GetValueKind() is not (JsonValueKind.True or JsonValueKind.False))
            {
                error = Invalid("'stream' must be a boolean.", "stream");
                return false;
            }
            stream = streamNode.GetValue<bool>();
        }
        var includeUsage = false;
        if (body.TryGetPropertyValue("stream_options", out var options) && options is not null)
        {
            if (options is not JsonObject optionsObject)
            {
                error = Invalid("'stream_options' must be an object.", "stream_options");
                return false;
            }
            if (!stream)
            {
                error = Invalid("'stream_options' is only allowed when 'stream' is true.", "stream_options");
                return false;
            }
            if (optionsObject["include_usage"] is { } usage)
            {
                if (usage.GetValueKind() is not (JsonValueKind.True or JsonValueKind.False))
                {
                    error = Invalid("'stream_options.include_usage' must be a boolean.", "stream_options.include_usage");
                    return false;
                }
                includeUsage = usage.GetValue<bool>();
            }
        }

        if (!CheckNumber(body, "temperature", 0, 2, out error)
            || !CheckNumber(body, "top_p", 0, 1, out error)
            || !CheckNumber(body, "presence_penalty", -2, 2, out error)
            || !CheckNumber(body, "frequency_penalty", -2, 2, out error)
            || !CheckInteger(body, "max_tokens", 1, int.MaxValue, out error)
            || !CheckInteger(body, "max_completion_tokens", 1, int.MaxValue, out error)
            || !CheckInteger(body, "seed", long.MinValue, long.MaxValue, out error)
            || !CheckInteger(body, "top_logprobs", 0, 20, out error)
            || !CheckBoolean(body, "logprobs", out error)
            || !CheckBoolean(body, "parallel_tool_calls", out error)
            || !CheckStop(body, out error)
            || !CheckLogitBias(body, out error)
            || !CheckResponseFormat(body, out error)
            || !CheckTools(body, out error)
            || !CheckToolChoice(body, out error))
        {
            return false;
        }
        if (body["n"] is { } n && !(n.GetValueKind() == JsonValueKind.Number && n.AsValue().TryGetValue<double>(out var count) && count == 1))
        {
            error = Invalid("Only n = 1 is supported.", "n");
            return false;
        }
        if (body["reasoning_effort"] is { } effort && effort.GetValueKind() != JsonValueKind.String)
        {
            error = Invalid("'reasoning_effort' must be a string.", "reasoning_effort");
            return false;
        }

        string? user = null;
        if (body.TryGetPropertyValue("user", out var userNode) && userNode is not null)
        {
            if (userNode.GetValueKind() != JsonValueKind.String || userNode.GetValue<string>() is not { Length: > 0 and <= 256 } given)
            {
                error = Invalid("'user' must be a string of 1 to 256 characters.", "user");
                return false;
            }
            user = given;
        }

        request = new ChatRequest(body, model, messages, stream, includeUsage, user);
        error = null!;
        return true;
    }

    /// <summary>The output tokens the client asked for (<c>max_completion_tokens</c>, else <c>max_tokens</c>), if any.</summary>
    public long? RequestedMaxTokens =>
        (Body["max_completion_tokens"] ?? Body["max_tokens"]) is JsonValue value && value.TryGetValue<long>(out var tokens) ? tokens : null;

    /// <summary>
    /// Walks the whole body once and materializes every property name and string. Invalid UTF-8 inside a string and
    /// lone UTF-16 surrogates (<c>"\uD800"</c>) are refused: no tokenizer can read them and providers differ on what
    /// they do with them; duplicate property names are refused when the parser reports them.
    /// </summary>
    private static bool CheckText(JsonNode body, out OpenAiError error)
    {
        // The path to the bad text is built only when there is one: a valid body builds no path strings.
        var at = new Stack<(string? Name, int Index)>(8);
        try
        {
            Walk(body, at);
            error = null!;
            return true;
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or JsonException)
        {
            var where = at.Count == 0 ? null : string.Concat(at.Reverse().Select((s, i) => s.Name is null ? $"[{s.Index}]" : i == 0 ? s.Name : "." + s.Name));
            error = Invalid($"The request body contains text that is not valid UTF-8 / UTF-16 (or a repeated property name) {(where is null ? "at the top level" : $"in '{where}'")}.", where);
            return false;
        }

        static void Walk(JsonNode node, Stack<(string? Name, int Index)> at)
        {
            switch (node)
            {
                case JsonObject obj:
                    foreach (var (name, child) in obj)
                    {
                        at.Push((name, 0));
                        if (child is not null)
                        {
                            Walk(child, at);
                        }
                        at.Pop();
                    }
                    break;
                case JsonArray array:
                    for (var i = 0; i < array.Count; i++)
                    {
                        at.Push((null, i));
                        if (array[i] is { } item)
                        {
                            Walk(item, at);
                        }
                        at.Pop();
                    }
                    break;
                case JsonValue value when value.GetValueKind() == JsonValueKind.String:
                    CheckString(value);
                    break;
            }
        }

        // Parsed text is checked where it lies, without making a string of it: without escapes, valid UTF-8 is
        // valid text. Only a string with escapes (one may stand for a lone surrogate) or bad bytes is decoded,
        // which throws on what is not text.
        static void CheckString(JsonValue value)
        {
            if (value.TryGetValue<JsonElement>(out var element))
            {
                var raw = JsonMarshal.GetRawUtf8Value(element);
                if (!raw.Contains((byte)'\\') && Utf8.IsValid(raw))
                {
                    return;
                }
                _ = element.GetString();
                return;
            }
            _ = value.GetValue<string>();
        }
    }

    private static bool TryValidateMessage(JsonNode? node, int index, out OpenAiError error)
    {
        var at = $"messages[{index}]";
        if (node is not JsonObject message)
        {
            error = Invalid($"'{at}' must be an object.", at);
            return false;
        }
        if (!TryGetString(message, "role", out var role) || !Roles.Contains(role))
        {
            error = Invalid($"'{at}.role' must be one of system, developer, user, assistant, tool.", $"{at}.role");
            return false;
        }
        var content = message["content"];
        var kind = content?.GetValueKind() ?? JsonValueKind.Null;
        var contentOk = kind switch
        {
            JsonValueKind.String or JsonValueKind.Array => true,
            // An assistant turn that only calls tools carries no content.
            JsonValueKind.Null => role == "assistant" && message["tool_calls"] is JsonArray,
            _ => false,
        };
        if (!contentOk)
        {
            error = Invalid($"'{at}.content' must be a string or an array of content parts.", $"{at}.content");
            return false;
        }
        if (content is JsonArray parts)
        {
            for (var p = 0; p < parts.Count; p++)
            {
                if (parts[p] is not JsonObject part || !TryGetString(part, "type", out var type))
                {
                    error = Invalid($"'{at}.content[{p}]' must be an object with a 'type'.", $"{at}.content[{p}]");
                    return false;
                }
                if (!PartTypes.Contains(type))
                {
                    error = Invalid($"'{at}.content[{p}].type' must be one of text, image_url, input_audio, file, refusal.", $"{at}.content[{p}].type");
                    return false;
                }
                var partOk = type switch
                {
                    "text" => TryGetString(part, "text", out _),
                    "refusal" => TryGetString(part, "refusal", out _),
                    "image_url" => part["image_url"] is JsonObject image && TryGetString(image, "url", out _),
                    "input_audio" => part["input_audio"] is JsonObject,
                    _ => part["file"] is JsonObject,
                };
                if (!partOk)
                {
                    error = Invalid($"'{at}.content[{p}]' is a '{type}' part without its '{(type == "image_url" ? "image_url.url" : type)}'.", $"{at}.content[{p}]");
                    return false;
                }
            }
        }
        if (role == "tool" && (!TryGetString(message, "tool_call_id", out var callId) || callId.Length == 0))
        {
            error = Invalid($"'{at}.tool_call_id' is required for tool messages.", $"{at}.tool_call_id");
            return false;
        }
        error = null!;
        return true;
    }

    private static bool CheckNumber(JsonObject body, string name, double min, double max, out OpenAiError error)
    {
        error = null!;
        if (body[name] is not { } value)
        {
            return true;
        }
        if (value.GetValueKind() != JsonValueKind.Number || !value.AsValue().TryGetValue<double>(out var number) || number < min || number > max)
        {
            error = Invalid($"'{name}' must be a number between {min} and {max}.", name);
            return false;
        }
        return true;
    }

    private static bool CheckInteger(JsonObject body, string name, long min, long max, out OpenAiError error)
    {
        error = null!;
        if (body[name] is not { } value)
        {
            return true;
        }
        if (value.GetValueKind() != JsonValueKind.Number || !value.AsValue().TryGetValue<long>(out var number) || number < min || number > max)
        {
            error = Invalid(max == long.MaxValue ? $"'{name}' must be an integer." : $"'{name}' must be an integer from {min} to {max}.", name);
            return false;
        }
        return true;
    }

    private static bool CheckBoolean(JsonObject body, string name, out OpenAiError error)
    {
        error = null!;
        if (body[name] is { } value && value.GetValueKind() is not (JsonValueKind.True or JsonValueKind.False))
        {
            error = Invalid($"'{name}' must be a boolean.", name);
            return false;
        }
        return true;
    }

    /// <summary><c>stop</c>: a string, or an array of at most 4 strings (OpenAI's limit).</summary>
    private static bool CheckStop(JsonObject body, out OpenAiError error)
    {
        error = null!;
        var ok = body["stop"] switch
        {
            null => true,
            JsonArray stops => stops.Count <= 4 && stops.All(s => s?.GetValueKind() == JsonValueKind.String),
            var one => one.GetValueKind() == JsonValueKind.String,
        };
        if (!ok)
        {
            error = Invalid("'stop' must be a string or an array of at most 4 strings.", "stop");
        }
        return ok;
    }

    /// <summary><c>logit_bias</c>: token ids to numbers from -100 to 100.</summary>
    private static bool CheckLogitBias(JsonObject body, out OpenAiError error)
    {
        error = null!;
        var ok = body["logit_bias"] switch
        {
            null => true,
            JsonObject biases => biases.All(b => b.Value is JsonValue bias && bias.GetValueKind() == JsonValueKind.Number
                && bias.TryGetValue<double>(out var value) && value is >= -100 and <= 100),
            _ => false,
        };
        if (!ok)
        {
            error = Invalid("'logit_bias' must be an object mapping token ids to numbers from -100 to 100.", "logit_bias");
        }
        return ok;
    }

    private static bool CheckResponseFormat(JsonObject body, out OpenAiError error)
    {
        error = null!;
        if (body["response_format"] is not { } format)
        {
            return true;
        }
        if (format is not JsonObject formatObject || !TryGetString(formatObject, "type", out var type) || type is not ("text" or "json_object" or "json_schema"))
        {
            error = Invalid("'response_format' must be an object whose 'type' is text, json_object or json_schema.", "response_format");
            return false;
        }
        return true;
    }

    /// <summary><c>tools</c>: function tools, each with a name.</summary>
    private static bool CheckTools(JsonObject body, out OpenAiError error)
    {
        error = null!;
        if (body["tools"] is not { } tools)
        {
            return true;
        }
        if (tools is not JsonArray list)
        {
            error = Invalid("'tools' must be an array.", "tools");
            return false;
        }
        for (var i = 0; i < list.Count; i++)
        {
            if (list[i] is not JsonObject tool || !TryGetString(tool, "type", out var type) || type != "function"
                || tool["function"] is not JsonObject function || !TryGetString(function, "name", out var name) || name.Length == 0)
            {
                error = Invalid($"'tools[{i}]' must be a function tool: {{\"type\":\"function\",\"function\":{{\"name\":…}}}}.", $"tools[{i}]");
                return false;
            }
        }
        return true;
    }

    private static bool CheckToolChoice(JsonObject body, out OpenAiError error)
    {
        error = null!;
        var ok = body["tool_choice"] switch
        {
            null or JsonObject => true,
            var choice => choice.GetValueKind() == JsonValueKind.String,
        };
        if (!ok)
        {
            error = Invalid("'tool_choice' must be a string (none, auto, required) or an object.", "tool_choice");
        }
        return ok;
    }

    private static bool TryGetString(JsonObject obj, string name, out string value)
    {
        if (obj[name] is JsonValue node && node.GetValueKind() == JsonValueKind.String)
        {
            value = node.GetValue<string>();
            return true;
        }
        value = string.Empty;
        return false;
    }

    private static OpenAiError Invalid(string message, string? param) =>
        new(message, OpenAiErrorTypes.InvalidRequest, param, param is null ? "invalid_request" : "invalid_value");
}
