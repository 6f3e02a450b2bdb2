namespace Onyx.Gateway.Providers;

/// <summary>Why an upstream attempt failed.</summary>
internal enum FailureKind
{
    /// <summary>No connection could be made (refused, DNS, TLS, connect timeout).</summary>
    Connect,

    /// <summary>No first token (streams) or no answer (non-streaming) in time.</summary>
    Timeout,

    /// <summary>An HTTP status the gateway fails over on (408, 429, 5xx, 404, …).</summary>
    Status,

    /// <summary>401/403: the gateway's own provider key is wrong. Fail over and cool the deployment down.</summary>
    Auth,

    /// <summary>400/413/422: the client's request itself is at fault. Returned as is, not failed over.</summary>
    ClientError,

    /// <summary>The body or a chunk is not what the protocol says.</summary>
    Malformed,

    /// <summary>The upstream reported an error inside a 200 response (SSE error event, Ollama error line).</summary>
    ErrorEvent,

    /// <summary>The stream ended or broke before it finished.</summary>
    StreamBroken,

    /// <summary>The stream sent nothing for longer than the idle limit.</summary>
    Stalled,
}

/// <summary>
/// An upstream attempt failed. <see cref="Exception.Message"/> is safe to show a client and to log: it never
/// holds keys, and only summarizes what the provider said.
/// </summary>
internal sealed class UpstreamException(FailureKind kind, string message, int? statusCode = null, TimeSpan? retryAfter = null, Exception? inner = null)
    : Exception(message, inner)
{
    public FailureKind Kind { get; } = kind;

    public int? StatusCode { get; } = statusCode;

    public TimeSpan? RetryAfter { get; } = retryAfter;

    public bool IsClientError => Kind == FailureKind.ClientError;

    /// <summary>A short label for logs and metrics: <c>http_503</c>, <c>timeout</c>, …</summary>
    public string Reason => StatusCode is { } status ? $"http_{status}" : Kind switch
    {
        FailureKind.Connect => "connect_error",
        FailureKind.Timeout => "timeout",
        FailureKind.Malformed => "malformed_response",
        FailureKind.ErrorEvent => "error_event",
        FailureKind.StreamBroken => "stream_broken",
        FailureKind.Stalled => "stream_stalled",
        _ => Kind.ToString().ToLowerInvariant(),
    };
}
