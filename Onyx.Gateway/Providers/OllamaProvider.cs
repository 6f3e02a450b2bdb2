using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text;
using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Providers;

/// <summary>
/// Ollama's native <c>/api/chat</c>: OpenAI messages (tool calls and results, base64 images), tools, the response
/// format and sampling options go up translated; the NDJSON answer comes back as OpenAI chunks (tool calls with
/// ids and <c>finish_reason: "tool_calls"</c>, thinking as <c>reasoning_content</c>, usage from
/// <c>prompt_eval_count</c>/<c>eval_count</c>). What Ollama has no way to say makes the deployment decline the
/// request (<see cref="CannotServe"/>) rather than answer a different one. An <c>{"error":…}</c> line is a failure.
/// </summary>
internal sealed class OllamaProvider(UpstreamClients clients, TimeProvider time) : IChatProvider
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");

    public ProviderProtocol Protocol => ProviderProtocol.OllamaNative;

    public string? CannotServe(Deployment deployment, ChatRequest request) =>
        DeploymentCapabilities.Lacks(deployment, request) ?? Untranslatable(request);

    public async Task<CompletionResult> CompleteAsync(Deployment deployment, ChatRequest request, AttemptContext context, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(deployment, request, stream: false, cancellationToken);
        context.HeadersReceived = true;
        OllamaChatLine? line;
        try
        {
            var body = await UpstreamClients.ReadAnswerAsync(response, deployment, cancellationToken);
            line = JsonSerializer.Deserialize(body, OllamaJsonContext.Default.OllamaChatLine);
        }
        catch (JsonException ex)
        {
            throw UpstreamErrors.Malformed(deployment, "the body is not valid JSON", ex);
        }
        if (line?.Error is { } error)
        {
            throw new UpstreamException(FailureKind.ErrorEvent, $"{deployment.Id} reported an error: {UpstreamErrors.Summarize(error, deployment)}");
        }
        if (line?.Message is not { } message || !line.Done)
        {
            throw UpstreamErrors.Malformed(deployment, "no finished 'message'");
        }
        var model = line.Model ?? deployment.ProviderModel;
        context.ResponseModel = model;
        var usage = Usage(line);
        var text = message.Content ?? string.Empty;
        var toolCalls = ToolCalls(message, deployment, next: 0);
        var answer = new TranslatedAnswer(text, Reasoning(message), toolCalls, toolCalls is null ? FinishReason(line.DoneReason) : ToolCallsFinish);

        var bytes = JsonBytes.Write((id: "chatcmpl-" + context.RequestId, created: time.GetUtcNow().ToUnixTimeSeconds(), model, answer, usage), static (json, s) =>
        {
            var (id, created, model, answer, usage) = s;
            json.WriteStartObject();
            json.WriteString("id", id);
            json.WriteString("object", "chat.completion");
            json.WriteNumber("created", created);
            json.WriteString("model", model);
            json.WriteStartArray("choices");
            json.WriteStartObject();
            json.WriteNumber("index", 0);
            json.WriteStartObject("message");
            json.WriteString("role", "assistant");
            if (answer.ToolCalls is not null && answer.Text.Length == 0)
            {
                // As OpenAI answers a turn that only calls tools.
                json.WriteNull("content");
            }
            else
            {
                json.WriteString("content", answer.Text);
            }
            if (answer.Reasoning is not null)
            {
                json.WriteString("reasoning_content", answer.Reasoning);
            }
            if (answer.ToolCalls is not null)
            {
                ChatChunks.WriteToolCalls(json, answer.ToolCalls, withIndex: false);
            }
            json.WriteEndObject();
            json.WriteString("finish_reason", answer.Finish);
            json.WriteEndObject();
            json.WriteEndArray();
            if (usage is { } u)
            {
                ChatChunks.WriteUsage(json, u);
            }
            json.WriteEndObject();
        });
        return new CompletionResult(bytes, usage, model, text);
    }

    public async IAsyncEnumerable<StreamChunk> StreamAsync(Deployment deployment, ChatRequest request, AttemptContext context,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var response = await SendAsync(deployment, request, stream: true, cancellationToken);
        context.HeadersReceived = true;
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken), Encoding.UTF8);
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        var id = "chatcmpl-" + context.RequestId;
        var first = true;
        var toolCallsSent = 0;
        while (true)
        {
            string? text;
            try
            {
                text = await reader.ReadLineAsync(cancellationToken);
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException)
            {
                throw UpstreamErrors.Broken(ex, deployment);
            }
            if (text is null)
            {
                throw new UpstreamException(FailureKind.StreamBroken, $"{deployment.Id} ended the stream before the answer finished");
            }
            if (text.Length == 0)
            {
                continue;
            }
            OllamaChatLine line;
            try
            {
                line = JsonSerializer.Deserialize(text, OllamaJsonContext.Default.OllamaChatLine)
                    ?? throw UpstreamErrors.Malformed(deployment, "a stream line is null");
            }
            catch (JsonException ex)
            {
                throw UpstreamErrors.Malformed(deployment, "a stream line is not valid JSON", ex);
            }
            if (line.Error is { } error)
            {
                throw new UpstreamException(FailureKind.ErrorEvent, $"{deployment.Id} reported an error: {UpstreamErrors.Summarize(error, deployment)}");
            }
            var model = line.Model ?? deployment.ProviderModel;
            context.ResponseModel = model;
            var content = line.Message?.Content;
            var hasText = !string.IsNullOrEmpty(content);
            var reasoning = Reasoning(line.Message);
            var toolCalls = ToolCalls(line.Message, deployment, toolCallsSent);
            // The first line opens the answer with the assistant's role even when it carries nothing yet (unless the
            // answer ends right there, when the finish chunk below is all there is to say).
            if (hasText || reasoning is not null || toolCalls is not null || (first && !line.Done))
            {
                context.CompletionText.Append(content);
                var delta = hasText ? content : reasoning is null && toolCalls is null ? string.Empty : null;
                yield return new StreamChunk(
                    ChatChunks.Build(id, created, model, first ? "assistant" : null, delta, finishReason: null, usage: null, reasoning, toolCalls),
                    new ChunkInfo(hasText || reasoning is not null || toolCalls is not null, false, false, null, false, HasToolCall: toolCalls is not null,
                        HasReasoning: reasoning is not null));
                first = false;
                toolCallsSent += toolCalls?.Length ?? 0;
            }
            if (line.Done)
            {
                // Ollama says "stop" after a tool call too; an OpenAI client must hear that the model wants a tool run,
                // or it takes the empty answer as the final one.
                var finish = toolCallsSent > 0 ? ToolCallsFinish : FinishReason(line.DoneReason);
                yield return new StreamChunk(
                    ChatChunks.Build(id, created, model, role: null, content: null, finish, usage: null),
                    new ChunkInfo(false, true, false, null, false));
                if (Usage(line) is { } usage)
                {
                    yield return new StreamChunk(ChatChunks.Build(id, created, model, null, null, null, usage), new ChunkInfo(false, false, true, usage, false));
                }
                yield break;
            }
        }
    }

    private const string ToolCallsFinish = "tool_calls";

    /// <summary>A non-streamed answer, translated: what the <c>chat.completion</c> body is written from.</summary>
    private readonly record struct TranslatedAnswer(string Text, string? Reasoning, ToolCall[]? ToolCalls, string Finish);

    private static string? Reasoning(OllamaMessage? message) => string.IsNullOrEmpty(message?.Thinking) ? null : message.Thinking;

    /// <summary>
    /// The message's tool calls as OpenAI's, numbered from <paramref name="next"/> (the calls already sent in this
    /// answer); null when it calls none. Ollama gives calls no ids, and OpenAI clients match each tool result to
    /// its call by one, so each gets a fresh one.
    /// </summary>
    private static ToolCall[]? ToolCalls(OllamaMessage? message, Deployment deployment, int next)
    {
        if (message?.ToolCalls is not { Count: > 0 } calls)
        {
            return null;
        }
        var result = new ToolCall[calls.Count];
        for (var i = 0; i < calls.Count; i++)
        {
            if (calls[i].Function is not { Name.Length: > 0 } function)
            {
                throw UpstreamErrors.Malformed(deployment, "a tool call without a function name");
            }
            result[i] = new ToolCall(next + i, "call_" + UniqueIds.NewId(), function.Name, ArgumentsText(function.Arguments));
        }
        return result;
    }

    /// <summary>Ollama's arguments object as the JSON text OpenAI carries in a string (no arguments: <c>{}</c>).</summary>
    private static string ArgumentsText(JsonElement arguments) => arguments.ValueKind switch
    {
        JsonValueKind.Undefined or JsonValueKind.Null => "{}",
        JsonValueKind.String => arguments.GetString()!,
        _ => arguments.GetRawText(),
    };

    private static TokenUsage? Usage(OllamaChatLine line) =>
        line.PromptEvalCount is null && line.EvalCount is null ? null : new TokenUsage(line.PromptEvalCount ?? 0, line.EvalCount ?? 0);

    private static string FinishReason(string? doneReason) => doneReason switch
    {
        "length" => "length",
        _ => "stop",
    };

    private async Task<HttpResponseMessage> SendAsync(Deployment deployment, ChatRequest request, bool stream, CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, deployment.ChatEndpoint)
        {
            Content = new ByteArrayContent(BuildBody(deployment, request, stream)) { Headers = { ContentType = Json } },
        };
        return await clients.SendAsync(deployment, message, cancellationToken);
    }

    /// <summary>
    /// The first thing in <paramref name="request"/> that Ollama's <c>/api/chat</c> has no way to say, named by its
    /// field, or null. Sending the rest would answer a different question than the one asked (a forced tool call
    /// answered as free text, an image the model never saw), so the deployment is skipped instead. A plain request
    /// costs a few field look-ups and one pass over the messages.
    /// </summary>
    internal static string? Untranslatable(ChatRequest request)
    {
        var body = request.Body;
        if (ChatRequest.TryGetField(body, "tool_choice"u8, out var choice)
            && !(choice.ValueKind == JsonValueKind.String && (choice.ValueEquals("auto"u8) || choice.ValueEquals("none"u8))))
        {
            return choice.ValueKind == JsonValueKind.String
                ? $"tool_choice '{choice.GetString()}': Ollama cannot force a tool call"
                : "tool_choice names a function: Ollama cannot force a tool call";
        }
        if (ChatRequest.TryGetField(body, "parallel_tool_calls"u8, out var parallel) && parallel.ValueKind == JsonValueKind.False
            && RequestFeatures.OffersTools(request))
        {
            return "parallel_tool_calls is false: Ollama cannot hold a model to one tool call";
        }
        if (ChatRequest.TryGetField(body, "functions"u8, out _) || ChatRequest.TryGetField(body, "function_call"u8, out _))
        {
            return "functions/function_call (the legacy form of tools): the Ollama adapter translates only tools";
        }
        if (RequestFeatures.WantsLogprobs(request)
            || (ChatRequest.TryGetField(body, "top_logprobs"u8, out var top) && top.ValueKind == JsonValueKind.Number && top.TryGetInt32(out var n) && n > 0))
        {
            return "logprobs/top_logprobs: Ollama's /api/chat returns no log-probabilities";
        }
        if (ChatRequest.TryGetField(body, "logit_bias"u8, out var bias) && bias.ValueKind == JsonValueKind.Object && bias.EnumerateObject().MoveNext())
        {
            return "logit_bias: Ollama has no per-token bias";
        }
        if (ChatRequest.TryGetField(body, "reasoning_effort"u8, out _))
        {
            return "reasoning_effort: the Ollama adapter cannot set a model's reasoning effort";
        }
        var i = 0;
        foreach (var message in request.Messages.EnumerateArray())
        {
            if (UntranslatableMessage(message, i++) is { } reason)
            {
                return reason;
            }
        }
        return null;
    }

    private static string? UntranslatableMessage(JsonElement message, int index)
    {
        if (message.GetProperty("role"u8).ValueEquals("function"u8) || ChatRequest.TryGetField(message, "function_call"u8, out _))
        {
            return $"messages[{index}] uses function_call or the 'function' role (the legacy form of tools): the Ollama adapter translates only tool calls";
        }
        if (ChatRequest.TryGetField(message, "tool_calls"u8, out var calls))
        {
            if (calls.ValueKind != JsonValueKind.Array)
            {
                return $"messages[{index}].tool_calls is not an array of tool calls";
            }
            var c = 0;
            foreach (var call in calls.EnumerateArray())
            {
                if (FunctionOf(call) is not { } function)
                {
                    return $"messages[{index}].tool_calls[{c}] is not a function call with a name";
                }
                if (ArgumentsObject(function) is null)
                {
                    return $"messages[{index}].tool_calls[{c}].function.arguments is not a JSON object: Ollama takes tool call arguments only as an object";
                }
                c++;
            }
        }
        if (!ChatRequest.TryGetField(message, "content"u8, out var content) || content.ValueKind != JsonValueKind.Array)
        {
            return null;
        }
        var p = 0;
        foreach (var part in content.EnumerateArray())
        {
            var type = part.GetProperty("type"u8);
            if (type.ValueEquals("image_url"u8) && InlineImage(part, out _) is var image && image != ImageSource.Base64)
            {
                return image == ImageSource.OtherDataUrl
                    ? $"messages[{index}].content[{p}].image_url is a data: URL that is not base64: Ollama takes only base64 images"
                    : $"messages[{index}].content[{p}].image_url is a link, not a data: URL: Ollama takes only inline (base64) images";
            }
            if (type.ValueEquals("input_audio"u8) || type.ValueEquals("file"u8))
            {
                return $"messages[{index}].content[{p}] is a{(type.ValueEquals("file"u8) ? " file" : "n input_audio")} part: Ollama's /api/chat takes only text and images";
            }
            p++;
        }
        return null;
    }

    /// <summary>OpenAI chat request → Ollama <c>/api/chat</c> body.</summary>
    /// <remarks>
    /// What Ollama cannot say (<see cref="Untranslatable"/>) is not sent: a request that reaches here without that
    /// check (an old caller) loses it rather than failing. Tool call arguments that are not an object are sent as
    /// they are, so Ollama refuses them rather than the gateway inventing others.
    /// </remarks>
    internal static byte[] BuildBody(Deployment deployment, ChatRequest request, bool stream)
    {
        var bytes = JsonBytes.Write((deployment, request, stream), static (json, s) =>
        {
            var (deployment, request, stream) = s;
            var body = request.Body;
            json.WriteStartObject();
            json.WriteString("model"u8, deployment.ProviderModel);
            json.WriteBoolean("stream"u8, stream);
            json.WriteStartArray("messages"u8);
            // Tool call id → function name: Ollama names the tool a result comes from, OpenAI the call it answers.
            Dictionary<string, string>? callNames = null;
            foreach (var message in request.Messages.EnumerateArray())
            {
                WriteMessage(json, message, ref callNames);
            }
            json.WriteEndArray();
            // tool_choice "none" means the model must not call one: it is not offered any. (Ollama's schema for a
            // tool is OpenAI's.)
            if (RequestFeatures.OffersTools(request) && ChatRequest.TryGetField(body, "tools"u8, out var tools))
            {
                json.WritePropertyName("tools"u8);
                tools.WriteTo(json);
            }
            if (ChatRequest.TryGetField(body, "response_format"u8, out var format) && ChatRequest.TryGetField(format, "type"u8, out var type))
            {
                if (type.ValueEquals("json_object"u8))
                {
                    json.WriteString("format"u8, "json"u8);
                }
                else if (type.ValueEquals("json_schema"u8))
                {
                    // Ollama constrains the answer to the schema itself; a json_schema without one asks for any JSON.
                    if (ChatRequest.TryGetField(format, "json_schema"u8, out var spec) && spec.ValueKind == JsonValueKind.Object
                        && ChatRequest.TryGetField(spec, "schema"u8, out var schema))
                    {
                        json.WritePropertyName("format"u8);
                        schema.WriteTo(json);
                    }
                    else
                    {
                        json.WriteString("format"u8, "json"u8);
                    }
                }
            }

            json.WriteStartObject("options"u8);
            if (deployment.NumCtx is { } numCtx)
            {
                json.WriteNumber("num_ctx"u8, numCtx);
            }
            if (ChatRequest.TryGetField(body, "max_completion_tokens"u8, out var maxTokens) || ChatRequest.TryGetField(body, "max_tokens"u8, out maxTokens))
            {
                json.WritePropertyName("num_predict"u8);
                maxTokens.WriteTo(json);
            }
            else if (deployment.DefaultMaxTokens is { } defaultMax)
            {
                json.WriteNumber("num_predict"u8, defaultMax);
            }
            if (ChatRequest.TryGetField(body, "temperature"u8, out var temperature))
            {
                json.WritePropertyName("temperature"u8);
                temperature.WriteTo(json);
            }
            else if (deployment.DefaultTemperature is { } defaultTemperature)
            {
                json.WriteNumber("temperature"u8, defaultTemperature);
            }
            CopyOption(json, body, "top_p"u8);
            CopyOption(json, body, "seed"u8);
            CopyOption(json, body, "presence_penalty"u8);
            CopyOption(json, body, "frequency_penalty"u8);
            if (request.ProviderParameters != ProviderParameters.None)
            {
                CopyOption(json, body, "top_k"u8);
                CopyOption(json, body, "min_p"u8);
                CopyOption(json, body, "typical_p"u8);
                // Ollama's own name first; repetition_penalty (Together's and vLLM's) means the same to it.
                if (ChatRequest.TryGetField(body, "repeat_penalty"u8, out var penalty) || ChatRequest.TryGetField(body, "repetition_penalty"u8, out penalty))
                {
                    json.WritePropertyName("repeat_penalty"u8);
                    penalty.WriteTo(json);
                }
            }
            if (ChatRequest.TryGetField(body, "stop"u8, out var stop))
            {
                // Ollama takes a list only.
                json.WritePropertyName("stop"u8);
                if (stop.ValueKind == JsonValueKind.String)
                {
                    json.WriteStartArray();
                    stop.WriteTo(json);
                    json.WriteEndArray();
                }
                else
                {
                    stop.WriteTo(json);
                }
            }
            json.WriteEndObject();
            json.WriteEndObject();
        });
        return bytes;
    }

    /// <summary>An option Ollama names as OpenAI does.</summary>
    private static void CopyOption(Utf8JsonWriter json, JsonElement body, ReadOnlySpan<byte> name)
    {
        if (ChatRequest.TryGetField(body, name, out var value))
        {
            json.WritePropertyName(name);
            value.WriteTo(json);
        }
    }

    private enum ImageSource
    {
        /// <summary>A base64 <c>data:</c> URL: what Ollama takes (the payload alone).</summary>
        Base64,

        /// <summary>Another <c>data:</c> URL (percent-encoded text, an SVG).</summary>
        OtherDataUrl,

        /// <summary>An http(s) (or any other) link, which Ollama does not fetch.</summary>
        Link,
    }

    /// <summary>
    /// Where an <c>image_url</c> part's image is. For a base64 <c>data:</c> URL (<c>data:image/png;base64,…</c>),
    /// <paramref name="base64"/> is its payload, read in place: an image may be megabytes.
    /// </summary>
    private static ImageSource InlineImage(JsonElement part, out ReadOnlySpan<byte> base64)
    {
        base64 = default;
        // The request's validation made sure of image_url.url, a string.
        var url = part.GetProperty("image_url"u8).GetProperty("url"u8);
        var raw = JsonMarshal.GetRawUtf8Value(url)[1..^1];
        if (raw.Contains((byte)'\\'))
        {
            raw = Encoding.UTF8.GetBytes(url.GetString()!);
        }
        if (raw.Length < 5 || !Ascii.EqualsIgnoreCase(raw[..5], "data:"u8))
        {
            return ImageSource.Link;
        }
        var comma = raw.IndexOf((byte)',');
        if (comma < 7 || !Ascii.EqualsIgnoreCase(raw.Slice(comma - 7, 7), ";base64"u8))
        {
            return ImageSource.OtherDataUrl;
        }
        base64 = raw[(comma + 1)..];
        return ImageSource.Base64;
    }

    /// <summary>A tool call's <c>function</c> object, when it has a name; null for anything else.</summary>
    private static JsonElement? FunctionOf(JsonElement call) =>
        call.ValueKind == JsonValueKind.Object && ChatRequest.TryGetField(call, "function"u8, out var function) && function.ValueKind == JsonValueKind.Object
        && ChatRequest.TryGetField(function, "name"u8, out var name) && name.ValueKind == JsonValueKind.String && name.GetString()!.Length > 0
            ? function
            : null;

    /// <summary>
    /// OpenAI carries a tool call's arguments as a string of JSON; Ollama wants the object itself. The object's JSON
    /// text, or null when the arguments are not an object. No arguments (absent, or an empty string, as some
    /// clients write a call without parameters) are <c>{}</c>; an object written as one is taken as it is.
    /// </summary>
    private static string? ArgumentsObject(JsonElement function)
    {
        if (!ChatRequest.TryGetField(function, "arguments"u8, out var arguments))
        {
            return "{}";
        }
        switch (arguments.ValueKind)
        {
            case JsonValueKind.Object:
                return arguments.GetRawText();
            case JsonValueKind.String:
                var text = arguments.GetString()!;
                return string.IsNullOrWhiteSpace(text) ? "{}" : IsJsonObject(text) ? text : null;
            default:
                return null;
        }
    }

    private static bool IsJsonObject(string text)
    {
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(text));
        try
        {
            // One object and nothing after it (Read throws on anything but trailing whitespace).
            return reader.Read() && reader.TokenType == JsonTokenType.StartObject && reader.TrySkip() && !reader.Read();
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static void WriteMessage(Utf8JsonWriter json, JsonElement message, ref Dictionary<string, string>? callNames)
    {
        json.WriteStartObject();
        var role = message.GetProperty("role"u8);
        if (role.ValueEquals("developer"u8))
        {
            json.WriteString("role"u8, "system"u8);
        }
        else
        {
            json.WritePropertyName("role"u8);
            role.WriteTo(json);
        }
        var images = false;
        ChatRequest.TryGetField(message, "content"u8, out var content);
        switch (content.ValueKind)
        {
            case JsonValueKind.String:
                json.WritePropertyName("content"u8);
                content.WriteTo(json);
                break;
            case JsonValueKind.Array:
                var joined = new StringBuilder();
                foreach (var part in content.EnumerateArray())
                {
                    if (!ChatRequest.TryGetField(part, "type"u8, out var type))
                    {
                        continue;
                    }
                    if (type.ValueEquals("text"u8) && ChatRequest.TryGetField(part, "text"u8, out var text))
                    {
                        joined.Append(text.GetString());
                    }
                    else if (type.ValueEquals("refusal"u8) && ChatRequest.TryGetField(part, "refusal"u8, out var refusal))
                    {
                        // What the assistant said when it declined: part of what it said.
                        joined.Append(refusal.GetString());
                    }
                    else if (type.ValueEquals("image_url"u8))
                    {
                        images |= InlineImage(part, out _) == ImageSource.Base64;
                    }
                }
                json.WriteString("content"u8, joined.ToString());
                break;
            default:
                json.WriteString("content"u8, ""u8);
                break;
        }
        if (images)
        {
            json.WriteStartArray("images"u8);
            foreach (var part in content.EnumerateArray())
            {
                if (part.GetProperty("type"u8).ValueEquals("image_url"u8) && InlineImage(part, out var base64) == ImageSource.Base64)
                {
                    json.WriteStringValue(base64);
                }
            }
            json.WriteEndArray();
        }
        if (ChatRequest.TryGetField(message, "tool_calls"u8, out var calls) && calls.ValueKind == JsonValueKind.Array && calls.GetArrayLength() > 0)
        {
            WriteToolCalls(json, calls, ref callNames);
        }
        if (role.ValueEquals("tool"u8) && ChatRequest.TryGetField(message, "tool_call_id"u8, out var callId) && callId.ValueKind == JsonValueKind.String
            && callNames is not null && callNames.TryGetValue(callId.GetString()!, out var toolName))
        {
            json.WriteString("tool_name"u8, toolName);
        }
        json.WriteEndObject();
    }

    /// <summary>
    /// An assistant turn's calls, as Ollama writes them: <c>{"function":{"name","arguments":{…}}}</c>. Each call's
    /// id is remembered with its name for the tool results that follow.
    /// </summary>
    private static void WriteToolCalls(Utf8JsonWriter json, JsonElement calls, ref Dictionary<string, string>? callNames)
    {
        json.WriteStartArray("tool_calls"u8);
        foreach (var call in calls.EnumerateArray())
        {
            if (FunctionOf(call) is not { } function)
            {
                continue;
            }
            var name = function.GetProperty("name"u8).GetString()!;
            if (ChatRequest.TryGetField(call, "id"u8, out var id) && id.ValueKind == JsonValueKind.String)
            {
                (callNames ??= new(StringComparer.Ordinal))[id.GetString()!] = name;
            }
            json.WriteStartObject();
            json.WriteStartObject("function"u8);
            json.WriteString("name"u8, name);
            json.WritePropertyName("arguments"u8);
            if (ArgumentsObject(function) is { } arguments)
            {
                json.WriteRawValue(arguments, skipInputValidation: true);
            }
            else
            {
                function.GetProperty("arguments"u8).WriteTo(json);
            }
            json.WriteEndObject();
            json.WriteEndObject();
        }
        json.WriteEndArray();
    }
}
