using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace Onyx.AppHost.Ollama;

/// <summary>
/// The two calls of Ollama's HTTP API the AppHost needs: <c>POST /api/show</c> (is the model there?) and the
/// streaming <c>POST /api/pull</c>. One long-lived client for all Ollama servers; the base address is passed per call.
/// </summary>
internal sealed class OllamaApiClient(HttpClient httpClient)
{
    /// <summary>Whether the server at <paramref name="baseUri"/> has <paramref name="model"/> (<c>/api/show</c> answers 200).</summary>
    public async Task<bool> HasModelAsync(Uri baseUri, string model, CancellationToken cancellationToken)
    {
        using var content = Json(new OllamaModelRequest(model), OllamaJsonContext.Default.OllamaModelRequest);
        using var response = await httpClient.PostAsync(new Uri(baseUri, "api/show"), content, cancellationToken).ConfigureAwait(false);
        return response.IsSuccessStatusCode;
    }

    /// <summary>
    /// Pulls <paramref name="model"/>, reading Ollama's NDJSON progress line by line as it streams and reporting the
    /// overall download fraction (all layers together) whenever it changes.
    /// </summary>
    /// <exception cref="InvalidOperationException">Ollama answered with an error status or an <c>error</c> line.</exception>
    public async Task PullModelAsync(Uri baseUri, string model, Func<OllamaPullProgress, ValueTask> onProgress, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(baseUri, "api/pull"))
        {
            Content = Json(new OllamaPullRequest(model, Stream: true), OllamaJsonContext.Default.OllamaPullRequest),
        };
        using var response = await httpClient.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            throw new InvalidOperationException($"Ollama refused to pull '{model}': {(int)response.StatusCode} {body}");
        }

        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var reader = new StreamReader(stream);
        var layers = new Dictionary<string, (long Total, long Completed)>(StringComparer.Ordinal);

        while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
        {
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            var status = JsonSerializer.Deserialize(line, OllamaJsonContext.Default.OllamaPullStatus)
                ?? throw new InvalidOperationException($"Ollama sent an unreadable pull status: {line}");
            if (status.Error is { } error)
            {
                throw new InvalidOperationException($"Ollama could not pull '{model}': {error}");
            }

            if (status.Total is > 0)
            {
                layers[status.Digest ?? status.Status ?? string.Empty] = (status.Total.Value, status.Completed ?? 0);
            }

            var total = layers.Values.Sum(l => l.Total);
            var completed = layers.Values.Sum(l => Math.Min(l.Completed, l.Total));
            await onProgress(new OllamaPullProgress(status.Status ?? string.Empty, total, completed)).ConfigureAwait(false);
        }
    }

    // Buffered with a Content-Length: the bodies are tiny, and every server (and test fake) reads them.
    private static ByteArrayContent Json<T>(T value, JsonTypeInfo<T> typeInfo)
    {
        var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(value, typeInfo));
        content.Headers.ContentType = new("application/json");
        return content;
    }
}

/// <summary>One step of a pull: Ollama's status text and the bytes downloaded so far of all layers seen.</summary>
internal readonly record struct OllamaPullProgress(string Status, long TotalBytes, long CompletedBytes)
{
    /// <summary>Whole percent downloaded, or <see langword="null"/> before any layer size is known.</summary>
    public int? Percent => TotalBytes > 0 ? (int)(CompletedBytes * 100 / TotalBytes) : null;
}

internal sealed record OllamaModelRequest(string Model);

internal sealed record OllamaPullRequest(string Model, bool Stream);

/// <summary>A line of <c>/api/pull</c>'s NDJSON stream, e.g. <c>{"status":"downloading","digest":"sha256:…","total":N,"completed":M}</c>.</summary>
internal sealed record OllamaPullStatus(string? Status, string? Digest, long? Total, long? Completed, string? Error);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(OllamaModelRequest))]
[JsonSerializable(typeof(OllamaPullRequest))]
[JsonSerializable(typeof(OllamaPullStatus))]
internal sealed partial class OllamaJsonContext : JsonSerializerContext;
