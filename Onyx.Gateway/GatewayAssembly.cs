namespace Onyx.Gateway;

/// <summary>
/// Names this assembly for <c>WebApplicationFactory&lt;T&gt;</c>: both the gateway and the AppHost have a
/// top-level <c>Program</c>, so tests that reference both cannot name the gateway's by that name.
/// </summary>
public sealed class GatewayAssembly;
