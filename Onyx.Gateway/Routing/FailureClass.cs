using Onyx.Gateway.Configuration;
using Onyx.Gateway.Providers;

namespace Onyx.Gateway.Routing;

/// <summary>A failed attempt as the retry and fallback policy sees it.</summary>
internal enum FailureClass
{
    /// <summary>429, or 503 with Retry-After: the provider asked to be left alone for a while.</summary>
    RateLimited,

    /// <summary>A 5xx or 408 without Retry-After.</summary>
    ServerError,

    /// <summary>No connection, a connection reset, a malformed or broken stream, an in-band error, before any token.</summary>
    Transport,

    /// <summary>No response headers within the limit: the deployment said nothing at all.</summary>
    Silent,

    /// <summary>Headers came but no first token within the limit: alive, but slow for this request.</summary>
    Slow,

    /// <summary>The prompt does not fit the model's context window.</summary>
    ContextWindow,

    /// <summary>The provider's content policy refused the request.</summary>
    ContentPolicy,

    /// <summary>Any other 400/413/422: the request itself is at fault.</summary>
    BadRequest,

    /// <summary>401/403: the gateway's provider key was refused.</summary>
    Auth,

    /// <summary>Another status (404, …): this deployment cannot serve now; another may.</summary>
    Unavailable,
}
