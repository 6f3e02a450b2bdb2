using Onyx.Gateway.Providers;

namespace Onyx.Gateway.Routing;

/// <summary>A continuation of a broken answer: its route, its first token, and how its seam was proven.</summary>
internal sealed record ResumedStream(RouteInfo Route, StreamHead Head, int SkippedChars, string How);
