using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Model;
using Onyx.Gateway.Telemetry;

namespace Onyx.Gateway.Resilience;

/// <summary>
/// One breaker per deployment, made at start-up from <c>router_settings</c>. With Redis the breakers are
/// cluster-wide (<see cref="RedisCircuitSync"/>), and starting the registry (a hosted service then) subscribes to
/// the other replicas' announcements and reads the breakers they opened before this replica started.
/// </summary>
internal sealed partial class CircuitBreakerRegistry : IHostedService
{
    /// <summary>The story's breaker: 60 s before a probe, unless <c>cooldown_time</c> says otherwise.</summary>
    public static readonly TimeSpan DefaultCooldown = TimeSpan.FromSeconds(60);

    private readonly Dictionary<string, CircuitBreaker> _breakers;
    private readonly RedisCircuitSync? _cluster;

    public CircuitBreakerRegistry(RoutingTable routing, IOptions<LiteLlmOptions> liteLlm, IOptions<OnyxOptions> onyx,
        TimeProvider time, GatewayMetrics metrics, ILogger<CircuitBreakerRegistry> logger, RedisCircuitSync? cluster = null)
    {
        var router = liteLlm.Value.RouterSettings;
        var cooldown = router.CooldownTime is { } seconds ? TimeSpan.FromSeconds(seconds) : DefaultCooldown;
        _cluster = cluster;
        _breakers = routing.Deployments.ToDictionary(
            d => d.Id,
            d => new CircuitBreaker(d.Id, router.AllowedFails, onyx.Value.Routing.FailureWindow, cooldown, time,
                (breaker, from, to, reason, replica) =>
                {
                    if (replica is null)
                    {
                        Log.Transition(logger, breaker.DeploymentId, from, to, reason);
                    }
                    else
                    {
                        Log.FollowedReplica(logger, breaker.DeploymentId, from, to, replica, reason);
                    }
                    metrics.BreakerTransition(breaker.DeploymentId, to.ToString(), replica is not null);
                },
                cluster));
        metrics.ObserveBreakers(() => _breakers.Values.Select(b => (b.DeploymentId, (int)b.State)));
    }

    public CircuitBreaker For(Deployment deployment) => _breakers[deployment.Id];

    public IEnumerable<CircuitBreaker> All => _breakers.Values;

    public Task StartAsync(CancellationToken cancellationToken) => _cluster?.StartAsync(_breakers, cancellationToken) ?? Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => _cluster?.StopAsync() ?? Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(2001, LogLevel.Warning, "Circuit breaker for {Deployment}: {From} -> {To} ({Reason})")]
        public static partial void Transition(ILogger logger, string deployment, CircuitState from, CircuitState to, string reason);

        [LoggerMessage(2002, LogLevel.Warning, "Circuit breaker for {Deployment}: {From} -> {To}, following replica {Replica} ({Reason})")]
        public static partial void FollowedReplica(ILogger logger, string deployment, CircuitState from, CircuitState to, string replica, string reason);
    }
}
