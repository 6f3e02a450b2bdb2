using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Routing;

/// <summary>The request could not be served; <see cref="Error"/> is what the client gets.</summary>
internal sealed class RoutingException(int statusCode, OpenAiError error, TimeSpan? retryAfter = null) : Exception(error.Message)
{
    public int StatusCode { get; } = statusCode;

    public OpenAiError Error { get; } = error;

    public TimeSpan? RetryAfter { get; } = retryAfter;
}
