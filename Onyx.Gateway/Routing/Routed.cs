using Onyx.Gateway.Providers;
using Onyx.Gateway.Resilience;

namespace Onyx.Gateway.Routing;

/// <summary>An answer (or a stream's first token) from one deployment, and the attempt that holds its resources.</summary>
internal sealed record Routed<T>(RouteInfo Route, T Result, Attempt Attempt);
