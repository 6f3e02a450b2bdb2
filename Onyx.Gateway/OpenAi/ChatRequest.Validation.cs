using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace Onyx.Gateway.OpenAi;

/// <summary>The checks a request passes before it is taken: each failure names its field, as OpenAI's 400s do.</summary>
internal sealed partial class ChatRequest
{
    /// <summary>Parses and validates; on failure <paramref name="error"/> names the offending field.</summary>
    public static bool TryParse(JsonElement body, out ChatRequest request, out OpenAiError error) =>
        TryParse(body, DefaultMaxMessages, out request, out error);

    /// <summary>
    /// Validates <paramref name="body"/>, which must own its memory (parsed with <see cref="JsonElement.Parse(string, JsonDocumentOptions)"/>
    /// or cloned): the request keeps it. On failure <paramref name="error"/> names the offending field.
    /// </summary>
    public static bool TryParse(JsonElement body, int maxMessages, out ChatRequest request, out OpenAiError error)
    {
        request = null!;
        if (body.ValueKind != JsonValueKind.Object)
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
        var providerParameters = ProviderParameters.None;
        foreach (var property in body.EnumerateObject())
        {
            if (KnownName(property, Refused) is { } name)
            {
                error = new OpenAiError(
                    $"'{name}' cannot be set per request: the gateway decides where requests go and with which credentials.",
                    OpenAiErrorTypes.InvalidRequest, name, "unsupported_parameter");
                return false;
            }
            if (property.Value.ValueKind != JsonValueKind.Null)
            {
                providerParameters |= ProviderParameterOf(property);
            }
        }
        if (!TryGetField(body, "model"u8, out var modelValue) || modelValue.ValueKind != JsonValueKind.String
            || modelValue.GetString() is not { } model || string.IsNullOrWhiteSpace(model))
        {
            error = Invalid("'model' is required and must be a non-empty string.", "model");
            return false;
        }
        // The model names an alias, and goes into logs, traces and error messages: a name no alias can have (too long,
        // or with control characters that would forge lines in a plain-text log) is refused here.
        if (model.Length > MaxModelLength || model.AsSpan().ContainsAnyInRange('\u0000', '\u001f') || model.Contains('\u007f'))
        {
            error = Invalid($"'model' must be at most {MaxModelLength} characters, without control characters.", "model");
            return false;
        }
        if (!TryGetField(body, "messages"u8, out var messages) || messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0)
        {
            error = Invalid("'messages' is required and must be a non-empty array.", "messages");
            return false;
        }
        var count = messages.GetArrayLength();
        if (count > maxMessages)
        {
            error = Invalid($"'messages' has {count} messages; this gateway accepts at most {maxMessages}.", "messages");
            return false;
        }
        var index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            if (!TryValidateMessage(message, index++, out error))
            {
                return false;
            }
        }

        var stream = false;
        if (TryGetField(body, "stream"u8, out var streamValue))
        {
            if (streamValue.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
            {
                error = Invalid("'stream' must be a boolean.", "stream");
                return false;
            }
            stream = streamValue.GetBoolean();
        }
        var includeUsage = false;
        if (TryGetField(body, "stream_options"u8, out var options))
        {
            if (options.ValueKind != JsonValueKind.Object)
            {
                error = Invalid("'stream_options' must be an object.", "stream_options");
                return false;
            }
            if (!stream)
            {
                error = Invalid("'stream_options' is only allowed when 'stream' is true.", "stream_options");
                return false;
            }
            if (TryGetField(options, "include_usage"u8, out var usage))
            {
                if (usage.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                {
                    error = Invalid("'stream_options.include_usage' must be a boolean.", "stream_options.include_usage");
                    return false;
                }
                includeUsage = usage.GetBoolean();
            }
        }

        if (!CheckNumber(body, "temperature"u8, 0, 2, out error)
            || !CheckNumber(body, "top_p"u8, 0, 1, out error)
            || !CheckNumber(body, "presence_penalty"u8, -2, 2, out error)
            || !CheckNumber(body, "frequency_penalty"u8, -2, 2, out error)
            || !CheckInteger(body, "max_tokens"u8, 1, int.MaxValue, out error)
            || !CheckInteger(body, "max_completion_tokens"u8, 1, int.MaxValue, out error)
            || !CheckInteger(body, "seed"u8, long.MinValue, long.MaxValue, out error)
            || !CheckInteger(body, "top_logprobs"u8, 0, 20, out error)
            || !CheckBoolean(body, "logprobs"u8, out error)
            || !CheckBoolean(body, "parallel_tool_calls"u8, out error)
            || !CheckStop(body, out error)
            || !CheckLogitBias(body, out error)
            || !CheckResponseFormat(body, out error)
            || !CheckTools(body, out error)
            || !CheckToolChoice(body, out error)
            || (providerParameters != ProviderParameters.None && !CheckProviderParameters(body, out error)))
        {
            return false;
        }
        if (TryGetField(body, "n"u8, out var n) && !(n.ValueKind == JsonValueKind.Number && n.TryGetDouble(out var choices) && choices == 1))
        {
            error = Invalid("Only n = 1 is supported.", "n");
            return false;
        }
        if (TryGetField(body, "reasoning_effort"u8, out var effort) && effort.ValueKind != JsonValueKind.String)
        {
            error = Invalid("'reasoning_effort' must be a string.", "reasoning_effort");
            return false;
        }

        string? user = null;
        if (TryGetField(body, "user"u8, out var userValue))
        {
            if (userValue.ValueKind != JsonValueKind.String || userValue.GetString() is not { Length: > 0 and <= 256 } given)
            {
                error = Invalid("'user' must be a string of 1 to 256 characters.", "user");
                return false;
            }
            user = given;
        }

        request = new ChatRequest(body, model, messages, stream, includeUsage, user, providerParameters);
        error = null!;
        return true;
    }
    /// <summary>
    /// Walks the whole body once and checks every property name and string. Invalid UTF-8 inside a string and lone
    /// UTF-16 surrogates (<c>"\uD800"</c>) are refused: no tokenizer can read them and providers differ on what they
    /// do with them. (Duplicate property names are refused by the parser.)
    /// </summary>
    private static bool CheckText(JsonElement body, out OpenAiError error)
    {
        // The path to the bad text is built only when there is one: a valid body builds no path strings.
        var at = new Stack<(JsonProperty? Property, int Index)>(8);
        try
        {
            Walk(body, at);
            error = null!;
            return true;
        }
        catch (InvalidOperationException)
        {
            var where = at.Count == 0 ? null : string.Concat(at.Reverse().Select((s, i) =>
                s.Property is not { } property ? $"[{s.Index}]" : i == 0 ? Readable(property) : "." + Readable(property)));
            error = Invalid($"The request body contains text that is not valid UTF-8 / UTF-16 {(where is null ? "at the top level" : $"in '{where}'")}.", where);
            return false;
        }

        static void Walk(JsonElement element, Stack<(JsonProperty? Property, int Index)> at)
        {
            switch (element.ValueKind)
            {
                case JsonValueKind.Object:
                    foreach (var property in element.EnumerateObject())
                    {
                        at.Push((property, 0));
                        if (!IsPlainText(JsonMarshal.GetRawUtf8PropertyName(property)))
                        {
                            _ = property.Name;
                        }
                        Walk(property.Value, at);
                        at.Pop();
                    }
                    break;
                case JsonValueKind.Array:
                    var index = 0;
                    foreach (var item in element.EnumerateArray())
                    {
                        at.Push((null, index++));
                        Walk(item, at);
                        at.Pop();
                    }
                    break;
                case JsonValueKind.String when !IsPlainText(JsonMarshal.GetRawUtf8Value(element)):
                    _ = element.GetString();
                    break;
            }
        }

        // Parsed text is checked where it lies, without making a string of it: without escapes, valid UTF-8 is
        // valid text. Only text with escapes (one may stand for a lone surrogate) or bad bytes is decoded, which
        // throws InvalidOperationException on what is not text.
        static bool IsPlainText(ReadOnlySpan<byte> raw) => !raw.Contains((byte)'\\') && Utf8.IsValid(raw);

        // The name for the error message; a name that is not text itself is shown as written, bad bytes as U+FFFD.
        static string Readable(JsonProperty property)
        {
            try
            {
                return property.Name;
            }
            catch (InvalidOperationException)
            {
                return Encoding.UTF8.GetString(JsonMarshal.GetRawUtf8PropertyName(property));
            }
        }
    }

    private static bool TryValidateMessage(JsonElement message, int index, out OpenAiError error)
    {
        var at = $"messages[{index}]";
        if (message.ValueKind != JsonValueKind.Object)
        {
            error = Invalid($"'{at}' must be an object.", at);
            return false;
        }
        if (!TryGetField(message, "role"u8, out var roleValue) || KnownValue(roleValue, Roles) is not { } role)
        {
            error = Invalid($"'{at}.role' must be one of system, developer, user, assistant, tool.", $"{at}.role");
            return false;
        }
        var hasContent = TryGetField(message, "content"u8, out var content);
        var contentOk = (hasContent ? content.ValueKind : JsonValueKind.Null) switch
        {
            JsonValueKind.String or JsonValueKind.Array => true,
            // An assistant turn that only calls tools carries no content.
            JsonValueKind.Null => role == "assistant" && TryGetField(message, "tool_calls"u8, out var calls) && calls.ValueKind == JsonValueKind.Array,
            _ => false,
        };
        if (!contentOk)
        {
            error = Invalid($"'{at}.content' must be a string or an array of content parts.", $"{at}.content");
            return false;
        }
        if (hasContent && content.ValueKind == JsonValueKind.Array)
        {
            var p = 0;
            foreach (var part in content.EnumerateArray())
            {
                if (part.ValueKind != JsonValueKind.Object || !TryGetField(part, "type"u8, out var typeValue) || typeValue.ValueKind != JsonValueKind.String)
                {
                    error = Invalid($"'{at}.content[{p}]' must be an object with a 'type'.", $"{at}.content[{p}]");
                    return false;
                }
                if (KnownValue(typeValue, PartTypes) is not { } type)
                {
                    error = Invalid($"'{at}.content[{p}].type' must be one of text, image_url, input_audio, file, refusal.", $"{at}.content[{p}].type");
                    return false;
                }
                var partOk = type switch
                {
                    "text" => IsString(part, "text"u8),
                    "refusal" => IsString(part, "refusal"u8),
                    "image_url" => TryGetField(part, "image_url"u8, out var image) && image.ValueKind == JsonValueKind.Object && IsString(image, "url"u8),
                    "input_audio" => IsObject(part, "input_audio"u8),
                    _ => IsObject(part, "file"u8),
                };
                if (!partOk)
                {
                    error = Invalid($"'{at}.content[{p}]' is a '{type}' part without its '{(type == "image_url" ? "image_url.url" : type)}'.", $"{at}.content[{p}]");
                    return false;
                }
                p++;
            }
        }
        if (role == "tool" && !(TryGetField(message, "tool_call_id"u8, out var callId) && callId.ValueKind == JsonValueKind.String && callId.GetString()!.Length > 0))
        {
            error = Invalid($"'{at}.tool_call_id' is required for tool messages.", $"{at}.tool_call_id");
            return false;
        }
        error = null!;
        return true;
    }

    private static bool CheckNumber(JsonElement body, ReadOnlySpan<byte> name, double min, double max, out OpenAiError error)
    {
        error = null!;
        if (!TryGetField(body, name, out var value))
        {
            return true;
        }
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out var number) || number < min || number > max)
        {
            var field = Name(name);
            error = Invalid(double.IsPositiveInfinity(max) ? $"'{field}' must be a number of at least {min}." : $"'{field}' must be a number between {min} and {max}.", field);
            return false;
        }
        return true;
    }

    /// <summary>
    /// The provider-specific parameters' types and ranges, as the servers that take them document them, so a value no
    /// server would take is the client's 400 here rather than a provider's refusal (or a guess) later.
    /// </summary>
    private static bool CheckProviderParameters(JsonElement body, out OpenAiError error) =>
        // vLLM reads -1 as "every token"; Together and Ollama take positive counts.
        CheckInteger(body, "top_k"u8, -1, 1_000_000, out error)
        && CheckNumber(body, "min_p"u8, 0, 1, out error)
        && CheckNumber(body, "typical_p"u8, 0, 1, out error)
        && CheckNumber(body, "top_a"u8, 0, 1, out error)
        && CheckNumber(body, "repetition_penalty"u8, 0, double.PositiveInfinity, out error)
        && CheckNumber(body, "repeat_penalty"u8, 0, double.PositiveInfinity, out error);

    private static bool CheckInteger(JsonElement body, ReadOnlySpan<byte> name, long min, long max, out OpenAiError error)
    {
        error = null!;
        if (!TryGetField(body, name, out var value))
        {
            return true;
        }
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out var number) || number < min || number > max)
        {
            var field = Name(name);
            error = Invalid(max == long.MaxValue ? $"'{field}' must be an integer." : $"'{field}' must be an integer from {min} to {max}.", field);
            return false;
        }
        return true;
    }

    private static bool CheckBoolean(JsonElement body, ReadOnlySpan<byte> name, out OpenAiError error)
    {
        error = null!;
        if (TryGetField(body, name, out var value) && value.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
        {
            var field = Name(name);
            error = Invalid($"'{field}' must be a boolean.", field);
            return false;
        }
        return true;
    }

    /// <summary>A field's name for an error message: the checks look fields up by their UTF-8 names, as the body holds them.</summary>
    private static string Name(ReadOnlySpan<byte> name) => System.Text.Encoding.UTF8.GetString(name);

    /// <summary><c>stop</c>: a string, or an array of at most 4 strings (OpenAI's limit).</summary>
    private static bool CheckStop(JsonElement body, out OpenAiError error)
    {
        error = null!;
        if (!TryGetField(body, "stop"u8, out var stop))
        {
            return true;
        }
        var ok = stop.ValueKind switch
        {
            JsonValueKind.Array => stop.GetArrayLength() <= 4 && stop.EnumerateArray().All(static s => s.ValueKind == JsonValueKind.String),
            var kind => kind == JsonValueKind.String,
        };
        if (!ok)
        {
            error = Invalid("'stop' must be a string or an array of at most 4 strings.", "stop");
        }
        return ok;
    }

    /// <summary><c>logit_bias</c>: token ids to numbers from -100 to 100.</summary>
    private static bool CheckLogitBias(JsonElement body, out OpenAiError error)
    {
        error = null!;
        if (!TryGetField(body, "logit_bias"u8, out var biases))
        {
            return true;
        }
        var ok = biases.ValueKind == JsonValueKind.Object && biases.EnumerateObject().All(static b =>
            b.Value.ValueKind == JsonValueKind.Number && b.Value.TryGetDouble(out var value) && value is >= -100 and <= 100);
        if (!ok)
        {
            error = Invalid("'logit_bias' must be an object mapping token ids to numbers from -100 to 100.", "logit_bias");
        }
        return ok;
    }

    private static bool CheckResponseFormat(JsonElement body, out OpenAiError error)
    {
        error = null!;
        if (!TryGetField(body, "response_format"u8, out var format))
        {
            return true;
        }
        if (format.ValueKind != JsonValueKind.Object || !TryGetField(format, "type"u8, out var type) || type.ValueKind != JsonValueKind.String
            || !(type.ValueEquals("text"u8) || type.ValueEquals("json_object"u8) || type.ValueEquals("json_schema"u8)))
        {
            error = Invalid("'response_format' must be an object whose 'type' is text, json_object or json_schema.", "response_format");
            return false;
        }
        return true;
    }

    /// <summary><c>tools</c>: function tools, each with a name.</summary>
    private static bool CheckTools(JsonElement body, out OpenAiError error)
    {
        error = null!;
        if (!TryGetField(body, "tools"u8, out var tools))
        {
            return true;
        }
        if (tools.ValueKind != JsonValueKind.Array)
        {
            error = Invalid("'tools' must be an array.", "tools");
            return false;
        }
        var i = 0;
        foreach (var tool in tools.EnumerateArray())
        {
            if (tool.ValueKind != JsonValueKind.Object || !TryGetField(tool, "type"u8, out var type)
                || type.ValueKind != JsonValueKind.String || !type.ValueEquals("function"u8)
                || !TryGetField(tool, "function"u8, out var function) || function.ValueKind != JsonValueKind.Object
                || !TryGetField(function, "name"u8, out var name) || name.ValueKind != JsonValueKind.String || name.GetString()!.Length == 0)
            {
                error = Invalid($"'tools[{i}]' must be a function tool: {{\"type\":\"function\",\"function\":{{\"name\":…}}}}.", $"tools[{i}]");
                return false;
            }
            i++;
        }
        return true;
    }

    private static bool CheckToolChoice(JsonElement body, out OpenAiError error)
    {
        error = null!;
        // An unknown string is refused here, as OpenAI refuses it: passed on, one provider would refuse it and another
        // guess what it meant.
        var ok = !TryGetField(body, "tool_choice"u8, out var choice) || choice.ValueKind == JsonValueKind.Object
            || (choice.ValueKind == JsonValueKind.String && (choice.ValueEquals("none"u8) || choice.ValueEquals("auto"u8) || choice.ValueEquals("required"u8)));
        if (!ok)
        {
            error = Invalid("'tool_choice' must be a string (none, auto, required) or an object.", "tool_choice");
        }
        return ok;
    }

    private static bool IsString(JsonElement obj, ReadOnlySpan<byte> name) =>
        TryGetField(obj, name, out var value) && value.ValueKind == JsonValueKind.String;

    private static bool IsObject(JsonElement obj, ReadOnlySpan<byte> name) =>
        TryGetField(obj, name, out var value) && value.ValueKind == JsonValueKind.Object;

    private static OpenAiError Invalid(string message, string? param) =>
        new(message, OpenAiErrorTypes.InvalidRequest, param, param is null ? "invalid_request" : "invalid_value");
}
