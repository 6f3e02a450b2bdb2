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

    /// <summary>A 4xx saying the prompt does not fit the model's context window: another model may take it.</summary>
    ContextWindow,

    /// <summary>A 4xx saying the provider's content policy refused the request.</summary>
    ContentPolicy,

    /// <summary>The body or a chunk is not what the protocol says.</summary>
    Malformed,

    /// <summary>The upstream reported an error inside a 200 response (SSE error event, Ollama error line).</summary>
    ErrorEvent,

    /// <summary>The stream ended or broke before it finished.</summary>
    StreamBroken,

    /// <summary>The stream sent nothing for longer than the idle limit.</summary>
    Stalled,

    /// <summary>A deployment asked to continue a broken answer did not reproduce what the client already had.</summary>
    Diverged,
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
    public string Reason => Kind is FailureKind.ContextWindow or FailureKind.ContentPolicy || StatusCode is not { } status ? Label : $"http_{status}";

    /// <summary>The failure's kind as a metric label: <c>connect</c>, <c>timeout</c>, <c>status</c>, <c>auth</c>, …</summary>
    public string KindLabel => Kind switch
    {
        FailureKind.ClientError => "client_error",
        FailureKind.ContextWindow => "context_window",
        FailureKind.ContentPolicy => "content_policy",
        FailureKind.ErrorEvent => "error_event",
        FailureKind.StreamBroken => "stream_broken",
        _ => Kind.ToString().ToLowerInvariant(),
    };

    private string Label => Kind switch
    {
        FailureKind.Connect => "connect_error",
        FailureKind.Timeout => "timeout",
        FailureKind.Malformed => "malformed_response",
        FailureKind.ErrorEvent => "error_event",
        FailureKind.StreamBroken => "stream_broken",
        FailureKind.Stalled => "stream_stalled",
        FailureKind.ContextWindow => "context_window_exceeded",
        FailureKind.ContentPolicy => "content_policy",
        FailureKind.Diverged => "continuation_diverged",
        _ => Kind.ToString().ToLowerInvariant(),
    };
}
