using Onyx.Gateway.Providers;
using Onyx.Gateway.Resilience;

namespace Onyx.Gateway.Routing;

/// <summary>Why a deployment got no attempt.</summary>
/// <param name="ContextWindow">The prompt does not fit its <c>model_info.max_input_tokens</c> (pre-call check).</param>
internal readonly record struct DeploymentSkip(string Reason, bool Overloaded = false, bool Unservable = false, bool ContextWindow = false);
