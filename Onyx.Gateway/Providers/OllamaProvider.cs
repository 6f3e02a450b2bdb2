using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Routing;

namespace Onyx.Gateway.Providers;

/// <summary>
/// Ollama's native <c>/api/chat</c>: OpenAI messages and sampling options go up translated; the NDJSON answer
/// comes back as OpenAI chunks (usage from <c>prompt_eval_count</c>/<c>eval_count</c>, <c>done_reason</c> →
/// <c>finish_reason</c>). An <c>{"error":…}</c> line is a failure.
/// </summary>
internal sealed class OllamaProvider(UpstreamClients clients, TimeProvider time) : IChatProvider
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");

    public ProviderProtocol Protocol => ProviderProtocol.OllamaNative;

    public string? CannotServe(Deployment deployment, ChatRequest request) => DeploymentCapabilities.Lacks(deployment, request);

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
        if (line?.Message is null || !line.Done)
        {
            throw UpstreamErrors.Malformed(deployment, "no finished 'message'");
        }
        var model = line.Model ?? deployment.ProviderModel;
        context.ResponseModel = model;
        var usage = Usage(line);
        var text = line.Message.Content ?? string.Empty;

        var bytes = JsonBytes.Write((id: "chatcmpl-" + context.RequestId, created: time.GetUtcNow().ToUnixTimeSeconds(), model, text, finish: FinishReason(line.DoneReason), usage), static (json, s) =>
        {
            var (id, created, model, text, finish, usage) = s;
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
            json.WriteString("content", text);
            json.WriteEndObject();
            json.WriteString("finish_reason", finish);
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
            if (!string.IsNullOrEmpty(content) || first)
            {
                context.CompletionText.Append(content);
                var hasContent = !string.IsNullOrEmpty(content);
                if (hasContent || !line.Done)
                {
                    yield return new StreamChunk(
                        ChatChunks.Build(id, created, model, first ? "assistant" : null, content ?? string.Empty, finishReason: null, usage: null),
                        new ChunkInfo(hasContent, false, false, null, false));
                    first = false;
                }
            }
            if (line.Done)
            {
                yield return new StreamChunk(
                    ChatChunks.Build(id, created, model, role: null, content: null, FinishReason(line.DoneReason), usage: null),
                    new ChunkInfo(false, true, false, null, false));
                if (Usage(line) is { } usage)
                {
                    yield return new StreamChunk(ChatChunks.Build(id, created, model, null, null, null, usage), new ChunkInfo(false, false, true, usage, false));
                }
                yield break;
            }
        }
    }

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

    /// <summary>OpenAI chat request → Ollama <c>/api/chat</c> body.</summary>
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
            foreach (var message in request.Messages.EnumerateArray())
            {
                WriteMessage(json, message);
            }
            json.WriteEndArray();
            if (ChatRequest.TryGetField(body, "response_format"u8, out var format)
                && ChatRequest.TryGetField(format, "type"u8, out var type) && type.ValueEquals("json_object"u8))
            {
                json.WriteString("format"u8, "json"u8);
            }

            json.WriteStartObject("options"u8);
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

    /// <summary>Ollama takes bare base64 images, so only <c>data:</c> URLs can be passed on.</summary>
    private static string? DataUrlPayload(JsonElement part)
    {
        var url = ChatRequest.TryGetField(part, "image_url"u8, out var image) && ChatRequest.TryGetField(image, "url"u8, out var value)
            ? value.GetString()
            : null;
        return url is not null && url.StartsWith("data:", StringComparison.Ordinal) && url.Contains(',')
            ? url[(url.IndexOf(',') + 1)..]
            : null;
    }

    private static void WriteMessage(Utf8JsonWriter json, JsonElement message)
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
        List<string>? images = null;
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
                    else if (type.ValueEquals("image_url"u8) && DataUrlPayload(part) is { } image)
                    {
                        (images ??= []).Add(image);
                    }
                }
                json.WriteString("content"u8, joined.ToString());
                break;
            default:
                json.WriteString("content"u8, ""u8);
                break;
        }
        if (images is not null)
        {
            json.WriteStartArray("images"u8);
            images.ForEach(json.WriteStringValue);
            json.WriteEndArray();
        }
        json.WriteEndObject();
    }
}
