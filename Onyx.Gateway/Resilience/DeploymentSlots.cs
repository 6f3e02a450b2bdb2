using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Model;

namespace Onyx.Gateway.Resilience;

/// <summary>
/// Overload protection per deployment (<c>litellm_params.max_parallel_requests</c>): at most that many calls in
/// flight, a bounded queue (<see cref="RoutingOptions.QueueLimit"/>) waiting for a slot no longer than the
/// first-token limit, and beyond that the deployment is skipped for the next one — never unbounded memory.
/// Built on System.Threading.RateLimiting's <see cref="ConcurrencyLimiter"/>.
/// </summary>
internal sealed partial class DeploymentSlots
{
    private readonly Dictionary<string, ConcurrencyLimiter> _limiters;
    private readonly RoutingOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<DeploymentSlots> _logger;

    public DeploymentSlots(RoutingTable routing, IOptions<OnyxOptions> options, TimeProvider time, ILogger<DeploymentSlots> logger)
    {
        _logger = logger;
        _options = options.Value.Routing;
        _time = time;
        _limiters = routing.Deployments
            .Where(d => d.MaxParallelRequests is > 0)
            .ToDictionary(d => d.Id, d => new ConcurrencyLimiter(new ConcurrencyLimiterOptions
            {
                PermitLimit = d.MaxParallelRequests!.Value,
                QueueLimit = _options.QueueLimit,
                QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
            }), StringComparer.Ordinal);
    }

    /// <summary>A slot on <paramref name="deployment"/> (a no-op lease where it has no limit), or null when it is overloaded.</summary>
    public async ValueTask<IDisposable?> AcquireAsync(Deployment deployment, CancellationToken clientAborted)
    {
        if (!_limiters.TryGetValue(deployment.Id, out var limiter))
        {
            return NoLimit.Instance;
        }
        var now = limiter.AttemptAcquire();
        if (now.IsAcquired)
        {
            return now;
        }
        now.Dispose();
        Log.Queued(_logger, deployment.Id);
        using var wait = new CancellationTokenSource(_options.FirstTokenTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(wait.Token, clientAborted);
        try
        {
            var queued = await limiter.AcquireAsync(1, linked.Token);
            if (queued.IsAcquired)
            {
                return queued;
            }
            queued.Dispose();
            return null;
        }
        catch (OperationCanceledException) when (!clientAborted.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>Free slots on <paramref name="deployment"/> now (null where it has no limit).</summary>
    public long? FreeSlots(Deployment deployment) =>
        _limiters.TryGetValue(deployment.Id, out var limiter) ? limiter.GetStatistics()?.CurrentAvailablePermits : null;

    private static partial class Log
    {
        [LoggerMessage(2101, LogLevel.Debug, "A call waits for a slot on {Deployment} (max_parallel_requests reached)")]
        public static partial void Queued(ILogger logger, string deployment);
    }

    private sealed class NoLimit : IDisposable
    {
        public static readonly NoLimit Instance = new();

        public void Dispose()
        {
        }
    }
}
