using System.Globalization;
using System.Text.Json.Serialization;

namespace Onyx.Gateway.OpenAi;

/// <summary>OpenAI's error envelope: <c>{"error":{"message","type","param","code"}}</c>.</summary>
internal sealed record OpenAiError(
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("param")] string? Param,
    [property: JsonPropertyName("code")] string? Code);

internal sealed record OpenAiErrorEnvelope([property: JsonPropertyName("error")] OpenAiError Error);

/// <summary>The error types OpenAI's SDKs know, and the status codes that go with them.</summary>
internal static class OpenAiErrorTypes
{
    public const string InvalidRequest = "invalid_request_error";
    public const string Authentication = "authentication_error";
    public const string Permission = "permission_error";
    public const string NotFound = "not_found_error";
    public const string RateLimit = "rate_limit_error";
    public const string Server = "server_error";
    public const string ServiceUnavailable = "service_unavailable";
    public const string Upstream = "upstream_error";
}

/// <summary>Writes an OpenAI-shaped error response (for the endpoints, authentication and middleware alike).</summary>
internal static class OpenAiErrorWriter
{
    public static Task WriteAsync(HttpContext context, int statusCode, OpenAiError error, TimeSpan? retryAfter = null)
    {
        var response = context.Response;
        response.StatusCode = statusCode;
        if (retryAfter is { } wait)
        {
            // Whole seconds for HTTP; the exact figure in milliseconds for the OpenAI SDKs, which read retry-after-ms first.
            response.Headers.RetryAfter = Math.Max(1, (long)Math.Ceiling(wait.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
            response.Headers["retry-after-ms"] = Math.Max(0, (long)Math.Ceiling(wait.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture);
        }
        return response.WriteAsJsonAsync(new OpenAiErrorEnvelope(error), OpenAiJsonContext.Default.OpenAiErrorEnvelope);
    }
}
