
namespace Onyx.Gateway.Routing;

/// <summary>A non-streaming answer, ready to send.</summary>
internal sealed record RoutedCompletion(RouteInfo Route, byte[] Body);
