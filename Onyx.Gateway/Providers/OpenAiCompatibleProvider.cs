using System.Net.Http.Headers;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Json;
using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Providers;

/// <summary>
/// Together AI, DeepSeek and any OpenAI-compatible server: the client's body goes up with the deployment's model
/// and defaults; the answer comes back as it is, chunk by chunk.
/// </summary>
internal sealed class OpenAiCompatibleProvider(UpstreamClients clients) : IChatProvider
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");
    private static readonly MediaTypeWithQualityHeaderValue EventStream = new("text/event-stream");

    public ProviderProtocol Protocol => ProviderProtocol.OpenAiCompatible;

    public string? CannotServe(Deployment deployment, ChatRequest request) => DeploymentCapabilities.Lacks(deployment, request);

    public async Task<CompletionResult> CompleteAsync(Deployment deployment, ChatRequest request, AttemptContext context, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(deployment, request, stream: false, cancellationToken);
        context.HeadersReceived = true;
        var body = await UpstreamClients.ReadAnswerAsync(response, deployment, cancellationToken);

        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw UpstreamErrors.Malformed(deployment, "the body is not a JSON object");
            }
            if (root.TryGetProperty("error", out var error) && error.ValueKind != JsonValueKind.Null)
            {
                throw UpstreamErrors.ErrorEvent(deployment, body);
            }
            if (!root.TryGetProperty("choices", out var choices) || choices.ValueKind != JsonValueKind.Array || choices.GetArrayLength() == 0)
            {
                throw UpstreamErrors.Malformed(deployment, "no 'choices'");
            }
            var model = root.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null;
            string? text = null;
            if (choices[0].TryGetProperty("message", out var message) && message.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String)
            {
                text = content.GetString();
            }
            TokenUsage? usage = null;
            if (root.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object
                && u.TryGetProperty("prompt_tokens", out var p) && u.TryGetProperty("completion_tokens", out var c)
                && Count(p) is { } prompt && Count(c) is { } completion)
            {
                var cached = u.TryGetProperty("prompt_tokens_details", out var details) && details.ValueKind == JsonValueKind.Object
                    && details.TryGetProperty("cached_tokens", out var cachedTokens) && Count(cachedTokens) is { } n ? Math.Min(n, prompt) : 0;
                usage = new TokenUsage(prompt, completion, CachedPrompt: cached);
            }
            context.ResponseModel = model;
            return new CompletionResult(body, usage, model, text);
        }
        catch (JsonException ex)
        {
            throw UpstreamErrors.Malformed(deployment, "the body is not valid JSON", ex);
        }
    }

    /// <summary>A token count written as <c>12</c> or <c>12.0</c>; anything else is none.</summary>
    private static int? Count(JsonElement value) => value.ValueKind != JsonValueKind.Number ? null
        : value.TryGetInt32(out var count) ? (count >= 0 ? count : null)
        : value.TryGetDouble(out var number) && number is >= 0 and <= int.MaxValue && number == Math.Floor(number) ? (int)number : null;

    public async IAsyncEnumerable<StreamChunk> StreamAsync(Deployment deployment, ChatRequest request, AttemptContext context,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var response = await SendAsync(deployment, request, stream: true, cancellationToken);
        context.HeadersReceived = true;
        Stream body;
        try
        {
            body = await response.Content.ReadAsStreamAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            throw UpstreamErrors.Broken(ex, deployment);
        }

        // The chunk's own bytes are the one allocation per event: they are handed on as they are.
        var parser = SseParser.Create(body, static (_, data) => data.ToArray());
        await using var events = parser.EnumerateAsync(cancellationToken).GetAsyncEnumerator(cancellationToken);
        var finished = false;
        while (true)
        {
            try
            {
                if (!await events.MoveNextAsync())
                {
                    break;
                }
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException)
            {
                throw UpstreamErrors.Broken(ex, deployment);
            }

            var data = events.Current.Data;
            if (data.AsSpan().SequenceEqual("[DONE]"u8))
            {
                yield break;
            }
            if (data.Length == 0)
            {
                continue;
            }
            ChunkInfo info;
            try
            {
                info = ChunkInspector.Inspect(data, context.CompletionText);
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
            {
                throw UpstreamErrors.Malformed(deployment, "a stream chunk is not valid JSON", ex);
            }
            if (info.IsError)
            {
                throw UpstreamErrors.ErrorEvent(deployment, data);
            }
            finished |= info.HasFinishReason;
            yield return new StreamChunk(data, info);
        }
        if (!finished)
        {
            throw new UpstreamException(FailureKind.StreamBroken, $"{deployment.Id} ended the stream before the answer finished");
        }
        // A finish reason followed by the end of the stream is a complete answer, [DONE] or not.
    }

    private async Task<HttpResponseMessage> SendAsync(Deployment deployment, ChatRequest request, bool stream, CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, deployment.ChatEndpoint)
        {
            Content = new ByteArrayContent(BuildBody(deployment, request, stream)) { Headers = { ContentType = Json } },
        };
        if (deployment.ApiKey is { } key)
        {
            message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }
        if (stream)
        {
            message.Headers.Accept.Add(EventStream);
        }

        return await clients.SendAsync(deployment, message, cancellationToken);
    }

    /// <summary>
    /// The client's OpenAI chat fields (<see cref="ChatRequest.ForwardedFields"/>) and the provider-specific parameters its
    /// provider takes (<see cref="ProviderInfo.Takes"/>), with the deployment's model, its
    /// defaults where the client set none, and usage asked for in streams (the gateway needs it for the call log; the
    /// router passes it on only if the client asked). The client's values are copied as the raw JSON they came in.
    /// </summary>
    internal static byte[] BuildBody(Deployment deployment, ChatRequest request, bool stream)
    {
        var bytes = JsonBytes.Write((deployment, request, stream), static (json, s) =>
        {
            var (deployment, request, stream) = s;
            var body = request.Body;
            json.WriteStartObject();
            json.WriteString("model"u8, deployment.ProviderModel);
            foreach (var property in body.EnumerateObject())
            {
                // Only OpenAI's own chat fields go up (model, stream and stream_options are written here). A null
                // is an absent field: it is not sent, and the deployment's default takes its place below.
                if (property.Value.ValueKind == JsonValueKind.Null)
                {
                    continue;
                }
                if (ChatRequest.ForwardedName(property) is { } name)
                {
                    json.WritePropertyName(name);
                    // The parser checked the value, and ChatRequest its text: it is copied without a second check.
                    json.WriteRawValue(JsonMarshal.GetRawUtf8Value(property.Value), skipInputValidation: true);
                }
                else if (request.ProviderParameters != ProviderParameters.None
                    && ChatRequest.ProviderParameterOf(property) is var parameter && (parameter & deployment.Provider.Takes) != 0)
                {
                    // As LiteLLM passes them: at the top level, as the client wrote them (the parameters not taken
                    // reach here only with drop_params, and are left out).
                    json.WritePropertyName(JsonMarshal.GetRawUtf8PropertyName(property));
                    json.WriteRawValue(JsonMarshal.GetRawUtf8Value(property.Value), skipInputValidation: true);
                }
            }
            if (deployment.DefaultMaxTokens is { } maxTokens
                && !ChatRequest.TryGetField(body, "max_tokens"u8, out _) && !ChatRequest.TryGetField(body, "max_completion_tokens"u8, out _))
            {
                json.WriteNumber("max_tokens"u8, maxTokens);
            }
            if (deployment.DefaultTemperature is { } temperature && !ChatRequest.TryGetField(body, "temperature"u8, out _))
            {
                json.WriteNumber("temperature"u8, temperature);
            }
            json.WriteBoolean("stream"u8, stream);
            if (stream)
            {
                json.WriteStartObject("stream_options"u8);
                if (ChatRequest.TryGetField(body, "stream_options"u8, out var clientOptions))
                {
                    foreach (var option in clientOptions.EnumerateObject())
                    {
                        if (!option.NameEquals("include_usage"u8))
                        {
                            option.WriteTo(json);
                        }
                    }
                }
                json.WriteBoolean("include_usage"u8, true);
                json.WriteEndObject();
            }
            json.WriteEndObject();
        });
        return bytes;
    }
}
