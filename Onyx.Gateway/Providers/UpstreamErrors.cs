using System.Net.Http.Headers;
using System.Text.Json;
using System.Text;
using Onyx.Gateway.Model;

namespace Onyx.Gateway.Providers;

/// <summary>Turns what an upstream said or did into an <see cref="UpstreamException"/> that is safe to show.</summary>
internal static class UpstreamErrors
{
    private const int MaxErrorBodyBytes = 8 * 1024;
    private const int MaxMessageLength = 300;

    public static async Task<UpstreamException> FromResponseAsync(HttpResponseMessage response, Deployment deployment, CancellationToken cancellationToken)
    {
        var status = (int)response.StatusCode;
        string? detail = null;
        string? code = null;
        try
        {
            var body = await ReadPrefixAsync(response.Content, cancellationToken);
            (detail, code) = ExtractError(body, response.Content.Headers.ContentType);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            // The status alone says enough.
        }
        var kind = status switch
        {
            400 or 404 or 413 or 422 when UpstreamErrorText.IsContextWindow(code, detail) => FailureKind.ContextWindow,
            400 or 403 or 422 when UpstreamErrorText.IsContentPolicy(code, detail) => FailureKind.ContentPolicy,
            400 or 413 or 422 => FailureKind.ClientError,
            401 or 403 => FailureKind.Auth,
            _ => FailureKind.Status,
        };
        var message = $"{deployment.Id} answered HTTP {status}" + (detail is null ? "" : $": {Summarize(detail, deployment)}");
        return new UpstreamException(kind, message, status, RetryAfter(response.Headers));
    }

    public static UpstreamException Transport(Exception ex, Deployment deployment) =>
        new(FailureKind.Connect, $"{deployment.Id} could not be reached ({Describe(ex)})", inner: ex);

    public static UpstreamException Broken(Exception ex, Deployment deployment) =>
        new(FailureKind.StreamBroken, $"{deployment.Id} broke off the stream ({Describe(ex)})", inner: ex);

    public static UpstreamException Malformed(Deployment deployment, string what, Exception? ex = null) =>
        new(FailureKind.Malformed, $"{deployment.Id} sent a malformed response: {what}", inner: ex);

    public static UpstreamException ErrorEvent(Deployment deployment, ReadOnlySpan<byte> json) =>
        new(FailureKind.ErrorEvent, $"{deployment.Id} reported an error: {Summarize(ExtractError(json.ToArray(), null).Message ?? "unknown error", deployment)}");

    /// <summary>Anything else a provider adapter threw: a bug or an answer no check foresaw, handled as a malformed one.</summary>
    public static UpstreamException Unexpected(Exception ex, Deployment deployment) =>
        new(FailureKind.Malformed, $"{deployment.Id} sent a response the gateway could not read ({ex.GetType().Name})", inner: ex);

    /// <summary>Shortens a provider's message and removes the deployment's key, base URL and host:port from it.</summary>
    public static string Summarize(string detail, Deployment deployment)
    {
        var text = detail.ReplaceLineEndings(" ").Trim();
        if (deployment.ApiKey is { Length: > 0 } key)
        {
            text = text.Replace(key, "[redacted]", StringComparison.Ordinal);
        }
        text = text.Replace(deployment.Origin, "[upstream]", StringComparison.OrdinalIgnoreCase)
            .Replace(deployment.ApiBase.Authority, "[upstream]", StringComparison.OrdinalIgnoreCase);
        return text.Length <= MaxMessageLength ? text : string.Concat(text.AsSpan(0, MaxMessageLength), "…");
    }

    private static string Describe(Exception ex) => ex switch
    {
        HttpRequestException { HttpRequestError: not HttpRequestError.Unknown } http => http.HttpRequestError.ToString(),
        HttpIOException io => io.HttpRequestError.ToString(),
        TimeoutException => "connect timeout",
        _ => ex.GetType().Name,
    };

    private static async Task<byte[]> ReadPrefixAsync(HttpContent content, CancellationToken cancellationToken)
    {
        await using var stream = await content.ReadAsStreamAsync(cancellationToken);
        var buffer = new byte[MaxErrorBodyBytes];
        var read = 0;
        int n;
        while (read < buffer.Length && (n = await stream.ReadAsync(buffer.AsMemory(read), cancellationToken)) > 0)
        {
            read += n;
        }
        return buffer[..read];
    }

    /// <summary>
    /// OpenAI's <c>{"error":{"message","code","type"}}</c>, Ollama's <c>{"error":"…"}</c>, or a note on a non-JSON body;
    /// with the error's <c>code</c> (else its <c>type</c>) where it has one.
    /// </summary>
    private static (string? Message, string? Code) ExtractError(byte[] body, MediaTypeHeaderValue? contentType)
    {
        if (body.Length == 0)
        {
            return (null, null);
        }
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            if (root.ValueKind == JsonValueKind.Object)
            {
                if (root.TryGetProperty("error", out var error))
                {
                    if (error.ValueKind == JsonValueKind.String)
                    {
                        return (error.GetString(), null);
                    }
                    if (error.ValueKind == JsonValueKind.Object && error.TryGetProperty("message", out var message) && message.ValueKind == JsonValueKind.String)
                    {
                        return (message.GetString(), Text(error, "code") ?? Text(error, "type"));
                    }
                }
                if (root.TryGetProperty("message", out var plain) && plain.ValueKind == JsonValueKind.String)
                {
                    return (plain.GetString(), Text(root, "code") ?? Text(root, "type"));
                }
            }
            return (null, null);
        }
        catch (JsonException)
        {
            var type = contentType?.MediaType ?? "unknown";
            return (type.Contains("html", StringComparison.OrdinalIgnoreCase)
                ? "an HTML error page"
                : $"a non-JSON body ({type}): {Encoding.UTF8.GetString(body.AsSpan(0, Math.Min(body.Length, 120)))}", null);
        }

        static string? Text(JsonElement obj, string name) =>
            obj.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
    }

    /// <summary>
    /// How long the provider asked to be left alone: <c>retry-after-ms</c> (OpenAI's, precise) or <c>Retry-After</c>
    /// (seconds or an HTTP date).
    /// </summary>
    private static TimeSpan? RetryAfter(HttpResponseHeaders headers)
    {
        if (headers.TryGetValues("retry-after-ms", out var values)
            && double.TryParse(values.FirstOrDefault(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var ms)
            && ms >= 0 && double.IsFinite(ms))
        {
            return TimeSpan.FromMilliseconds(ms);
        }
        return headers.RetryAfter switch
        {
            { Delta: { } delta } => delta,
            { Date: { } date } => date - DateTimeOffset.UtcNow is var wait && wait > TimeSpan.Zero ? wait : TimeSpan.Zero,
            _ => null,
        };
    }
}
