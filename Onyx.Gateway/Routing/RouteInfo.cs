using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Routing;

/// <summary>Where a request went: what the client asked for, what served it, and how many tries it took.</summary>
internal sealed record RouteInfo(string RequestId, string Alias, Deployment Deployment, bool Fallback, int Attempts);

/// <summary>A non-streaming answer, ready to send.</summary>
internal sealed record RoutedCompletion(RouteInfo Route, byte[] Body);

/// <summary>The request could not be served; <see cref="Error"/> is what the client gets.</summary>
internal sealed class RoutingException(int statusCode, OpenAiError error, TimeSpan? retryAfter = null) : Exception(error.Message)
{
    public int StatusCode { get; } = statusCode;

    public OpenAiError Error { get; } = error;

    public TimeSpan? RetryAfter { get; } = retryAfter;
}
