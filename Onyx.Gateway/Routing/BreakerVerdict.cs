using Onyx.Gateway.Resilience;

namespace Onyx.Gateway.Routing;

/// <summary>What a deployment's breaker hears of a failed attempt.</summary>
internal enum BreakerVerdict
{
    /// <summary>Counts towards opening it.</summary>
    Failure,

    /// <summary>Opens it at once (the provider refused the gateway's key).</summary>
    Trip,

    /// <summary>Rests it for the provider's Retry-After.</summary>
    CoolDown,

    /// <summary>Nothing: the attempt says nothing about the deployment's health (the request's own fault, a slow prompt).</summary>
    None,
}
