using Onyx.Gateway.Model;

namespace Onyx.Gateway.Routing;

/// <summary>Where a request went: what the client asked for, what served it, and how many tries it took.</summary>
internal sealed record RouteInfo(string RequestId, string Alias, Deployment Deployment, bool Fallback, int Attempts);
