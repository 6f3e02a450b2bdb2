using Onyx.Gateway.Providers;
using Onyx.Gateway.Resilience;

namespace Onyx.Gateway.Routing;

/// <summary>Why a deployment got no attempt.</summary>
internal readonly record struct Skip(string Reason, bool Overloaded = false, bool Unservable = false);

/// <summary>
/// Opens an attempt on a deployment if it may take one: it is available, its adapter can serve the request faithfully,
/// its breaker lets the call through and it has a free slot. A permit taken is handed back on every way out, including
/// the client leaving while the call waits for a slot.
/// </summary>
internal sealed class AttemptOpener(IEnumerable<IChatProvider> providers, CircuitBreakerRegistry breakers, DeploymentSlots slots, TimeProvider time)
{
    private readonly Dictionary<ProviderProtocol, IChatProvider> _providers = providers.ToDictionary(p => p.Protocol);

    public IChatProvider ProviderOf(Deployment deployment) => _providers[deployment.Provider.Protocol];

    /// <summary>Why <paramref name="deployment"/> cannot take <paramref name="call"/> at all, before any breaker or slot is asked.</summary>
    public string? Unfit(Deployment deployment, CallTracker call) => UnfitSkip(deployment, call)?.Reason;

    private Skip? UnfitSkip(Deployment deployment, CallTracker call) =>
        deployment.UnavailableReason is { } unavailable ? new Skip($"unavailable: {unavailable}")
        : ProviderOf(deployment).CannotServe(deployment, call.Request) is { } cannot ? new Skip($"cannot serve the request: {cannot}", Unservable: true)
        : null;

    public async ValueTask<(Attempt? Attempt, Skip Skip)> OpenAsync(CallTracker call, Deployment deployment, CancellationToken clientAborted)
    {
        if (UnfitSkip(deployment, call) is { } unfit)
        {
            return (null, unfit);
        }
        var breaker = breakers.For(deployment);
        if (await breaker.TryAcquireAsync() is not (true, var permit))
        {
            return (null, new Skip("circuit open"));
        }
        IDisposable? slot;
        try
        {
            slot = await slots.AcquireAsync(deployment, clientAborted);
        }
        catch
        {
            breaker.OnAbandoned(permit);
            throw;
        }
        if (slot is null)
        {
            breaker.OnAbandoned(permit);
            return (null, new Skip("overloaded: max_parallel_requests reached and its queue full", Overloaded: true));
        }
        return (new Attempt(deployment, ProviderOf(deployment), breaker, permit, slot, call.AttemptStarted(deployment), time, clientAborted), default);
    }
}
