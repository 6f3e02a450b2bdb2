using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Routing;
using Onyx.Gateway.Telemetry;

namespace Onyx.Gateway.Resilience;

/// <summary>One breaker per deployment, made at start-up from <c>router_settings</c>.</summary>
internal sealed partial class CircuitBreakerRegistry
{
    /// <summary>The story's breaker: 60 s before a probe, unless <c>cooldown_time</c> says otherwise.</summary>
    public static readonly TimeSpan DefaultCooldown = TimeSpan.FromSeconds(60);

    private readonly Dictionary<string, CircuitBreaker> _breakers;

    public CircuitBreakerRegistry(RoutingTable routing, IOptions<LiteLlmOptions> liteLlm, IOptions<OnyxOptions> onyx,
        TimeProvider time, GatewayMetrics metrics, ILogger<CircuitBreakerRegistry> logger)
    {
        var router = liteLlm.Value.RouterSettings;
        var cooldown = router.CooldownTime is { } seconds ? TimeSpan.FromSeconds(seconds) : DefaultCooldown;
        _breakers = routing.Deployments.ToDictionary(
            d => d.Id,
            d => new CircuitBreaker(d.Id, router.AllowedFails, onyx.Value.Routing.FailureWindow, cooldown, time,
                (breaker, from, to, reason) =>
                {
                    Log.Transition(logger, breaker.DeploymentId, from, to, reason);
                    metrics.BreakerTransition(breaker.DeploymentId, to);
                }));
        metrics.ObserveBreakers(() => _breakers.Values);
    }

    public CircuitBreaker For(Deployment deployment) => _breakers[deployment.Id];

    public IEnumerable<CircuitBreaker> All => _breakers.Values;

    private static partial class Log
    {
        [LoggerMessage(2001, LogLevel.Warning, "Circuit breaker for {Deployment}: {From} -> {To} ({Reason})")]
        public static partial void Transition(ILogger logger, string deployment, CircuitState from, CircuitState to, string reason);
    }
}
