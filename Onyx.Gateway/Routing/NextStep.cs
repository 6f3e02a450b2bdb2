using Onyx.Gateway.Configuration;
using Onyx.Gateway.Providers;

namespace Onyx.Gateway.Routing;

/// <summary>Where a request goes after a failed attempt.</summary>
internal enum NextStep
{
    /// <summary>The same deployment again, after <see cref="Decision.Delay"/>.</summary>
    RetrySame,

    /// <summary>The next deployment of the chain.</summary>
    NextDeployment,

    /// <summary>The alias's <c>context_window_fallbacks</c>, or else the rest of the chain; never this deployment again.</summary>
    ContextWindowFallbacks,

    /// <summary>The alias's <c>content_policy_fallbacks</c> (only when configured).</summary>
    ContentPolicyFallbacks,

    /// <summary>No other deployment: the client gets this failure.</summary>
    Stop,
}
