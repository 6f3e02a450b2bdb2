using System.Text.Json;
using System.Text.Json.Nodes;

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
        messages.Add(assistant);
        if (style == Providers.ContinuationStyle.Instruction)
        {
            messages.Add(new JsonObject { ["role"] = "user", ["content"] = ContinueInstruction });
        }
        return new ChatRequest(body, Model, messages, Stream, IncludeUsage, User);
    }

    private static readonly HashSet<string> Roles = ["system", "developer", "user", "assistant", "tool", "function"];

    /// <summary>Parses and validates; on failure <paramref name="error"/> names the offending field.</summary>
    public static bool TryParse(JsonNode? node, out ChatRequest request, out OpenAiError error)
    {
        request = null!;
        if (node is not JsonObject body)
        {
            error = Invalid("The request body must be a JSON object.", null);
            return false;
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
            || !CheckInteger(body, "max_tokens", out error)
            || !CheckInteger(body, "max_completion_tokens", out error))
        {
            return false;
        }
        if (body["n"] is { } n && (n.GetValueKind() != JsonValueKind.Number || n.GetValue<double>() != 1))
        {
            error = Invalid("Only n = 1 is supported.", "n");
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
                if (parts[p] is not JsonObject part || !TryGetString(part, "type", out _))
                {
                    error = Invalid($"'{at}.content[{p}]' must be an object with a 'type'.", $"{at}.content[{p}]");
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
        if (value.GetValueKind() != JsonValueKind.Number || value.GetValue<double>() is var number && (number < min || number > max))
        {
            error = Invalid($"'{name}' must be a number between {min} and {max}.", name);
            return false;
        }
        return true;
    }

    private static bool CheckInteger(JsonObject body, string name, out OpenAiError error)
    {
        error = null!;
        if (body[name] is not { } value)
        {
            return true;
        }
        if (value.GetValueKind() != JsonValueKind.Number || !value.AsValue().TryGetValue<long>(out var number) || number < 1)
        {
            error = Invalid($"'{name}' must be an integer of at least 1.", name);
            return false;
        }
        return true;
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
