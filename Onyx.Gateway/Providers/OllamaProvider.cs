using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
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

    public async Task<CompletionResult> CompleteAsync(Deployment deployment, ChatRequest request, AttemptContext context, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(deployment, request, stream: false, cancellationToken);
        OllamaChatLine? line;
        try
        {
            var body = await response.Content.ReadAsByteArrayAsync(cancellationToken);
            line = JsonSerializer.Deserialize(body, OllamaJsonContext.Default.OllamaChatLine);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            throw UpstreamErrors.Broken(ex, deployment);
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
            json.WriteString("model", deployment.ProviderModel);
            json.WriteBoolean("stream", stream);
            json.WriteStartArray("messages");
            foreach (var node in request.Messages)
            {
                WriteMessage(json, (JsonObject)node!);
            }
            json.WriteEndArray();
            if (body["response_format"] is JsonObject format && format["type"]?.GetValue<string>() == "json_object")
            {
                json.WriteString("format", "json");
            }

            json.WriteStartObject("options");
            var maxTokens = body["max_completion_tokens"] ?? body["max_tokens"];
            if (maxTokens is not null)
            {
                json.WritePropertyName("num_predict");
                maxTokens.WriteTo(json);
            }
            else if (deployment.DefaultMaxTokens is { } defaultMax)
            {
                json.WriteNumber("num_predict", defaultMax);
            }
            if (body["temperature"] is { } temperature)
            {
                json.WritePropertyName("temperature");
                temperature.WriteTo(json);
            }
            else if (deployment.DefaultTemperature is { } defaultTemperature)
            {
                json.WriteNumber("temperature", defaultTemperature);
            }
            CopyOption(json, body, "top_p", "top_p");
            CopyOption(json, body, "seed", "seed");
            CopyOption(json, body, "presence_penalty", "presence_penalty");
            CopyOption(json, body, "frequency_penalty", "frequency_penalty");
            switch (body["stop"])
            {
                case JsonArray stops:
                    json.WritePropertyName("stop");
                    stops.WriteTo(json);
                    break;
                case JsonValue stop when stop.GetValueKind() == JsonValueKind.String:
                    json.WriteStartArray("stop");
                    json.WriteStringValue(stop.GetValue<string>());
                    json.WriteEndArray();
                    break;
            }
            json.WriteEndObject();
            json.WriteEndObject();
        });
        return bytes;
    }

    private static void CopyOption(Utf8JsonWriter json, JsonObject body, string from, string to)
    {
        if (body[from] is { } value)
        {
            json.WritePropertyName(to);
            value.WriteTo(json);
        }
    }

    /// <summary>Ollama takes bare base64 images, so only <c>data:</c> URLs can be passed on.</summary>
    private static string? DataUrlPayload(JsonObject part)
    {
        var url = (part["image_url"] as JsonObject)?["url"]?.GetValue<string>();
        return url is not null && url.StartsWith("data:", StringComparison.Ordinal) && url.Contains(',')
            ? url[(url.IndexOf(',') + 1)..]
            : null;
    }

    private static void WriteMessage(Utf8JsonWriter json, JsonObject message)
    {
        json.WriteStartObject();
        var role = message["role"]!.GetValue<string>();
        json.WriteString("role", role == "developer" ? "system" : role);
        var images = new List<string>();
        switch (message["content"])
        {
            case JsonValue text when text.GetValueKind() == JsonValueKind.String:
                json.WriteString("content", text.GetValue<string>());
                break;
            case JsonArray parts:
                var joined = new StringBuilder();
                foreach (var part in parts.OfType<JsonObject>())
                {
                    switch (part["type"]?.GetValue<string>())
                    {
                        case "text":
                            joined.Append(part["text"]?.GetValue<string>());
                            break;
                        case "image_url" when DataUrlPayload(part) is { } image:
                            images.Add(image);
                            break;
                    }
                }
                json.WriteString("content", joined.ToString());
                break;
            default:
                json.WriteString("content", string.Empty);
                break;
        }
        if (images.Count > 0)
        {
            json.WriteStartArray("images");
            images.ForEach(json.WriteStringValue);
            json.WriteEndArray();
        }
        json.WriteEndObject();
    }
}
