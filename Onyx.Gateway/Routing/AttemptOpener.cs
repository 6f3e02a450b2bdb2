using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;
using Onyx.Gateway.Resilience;

namespace Onyx.Gateway.Routing;

/// <summary>
/// Opens an attempt on a deployment if it may take one: it is available, its adapter can serve the request faithfully,
/// the prompt fits it (with pre-call checks), its breaker lets the call through, its <c>rpm</c>/<c>tpm</c> minute has
/// room and it has a free slot. A permit taken is handed back on every way out, including the client leaving while the
/// call waits for a slot.
/// </summary>
internal sealed partial class AttemptOpener(IEnumerable<IChatProvider> providers, RoutingTable routing, CircuitBreakerRegistry breakers,
    DeploymentSlots slots, DeploymentLimits limits, TimeProvider time, ILogger<AttemptOpener> logger)
{
    private readonly Dictionary<ProviderProtocol, IChatProvider> _providers = providers.ToDictionary(p => p.Protocol);

    public IChatProvider ProviderOf(Deployment deployment) => _providers[deployment.Provider.Protocol];

    /// <summary>Why <paramref name="deployment"/> cannot take <paramref name="call"/> at all, before any breaker or slot is asked.</summary>
    public string? Unfit(Deployment deployment, CallTracker call) => UnfitSkip(deployment, call)?.Reason;

    private DeploymentSkip? UnfitSkip(Deployment deployment, CallTracker call) =>
        deployment.UnavailableReason is { } unavailable ? new DeploymentSkip($"unavailable: {unavailable}")
        : ProviderOf(deployment).CannotServe(deployment, call.Request) is { } cannot ? new DeploymentSkip($"cannot serve the request: {cannot}", Unservable: true)
        : routing.PreCallChecks && deployment.MaxInputTokens is { } maxInput && call.PromptTokens > maxInput
            ? new DeploymentSkip($"the prompt (about {call.PromptTokens} tokens) does not fit model_info.max_input_tokens ({maxInput})", ContextWindow: true)
        : null;

    public async ValueTask<(Attempt? Attempt, DeploymentSkip Skip)> OpenAsync(CallTracker call, Deployment deployment, CancellationToken clientAborted)
    {
        if (UnfitSkip(deployment, call) is { } unfit)
        {
            return (null, unfit);
        }
        var breaker = breakers.For(deployment);
        if (await breaker.TryAcquireAsync() is not (true, var permit))
        {
            return (null, new DeploymentSkip("circuit open"));
        }
        IDisposable? slot;
        try
        {
            // After the breaker, so a deployment out of rotation spends none of its minute.
            if (await limits.TryAdmitAsync(deployment, call) is { } full)
            {
                breaker.OnAbandoned(permit);
                return (null, new DeploymentSkip(full, Overloaded: true));
            }
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
            return (null, new DeploymentSkip("overloaded: max_parallel_requests reached and its queue full", Overloaded: true));
        }
        if (deployment.DropParams && DeploymentCapabilities.NotTaken(deployment, call.Request) is var dropped && dropped != ProviderParameters.None)
        {
            Log.ParametersDropped(logger, ProviderParameterNames.Describe(dropped), deployment.Id);
        }
        return (new Attempt(deployment, ProviderOf(deployment), breaker, permit, slot, call.AttemptStarted(deployment), time, clientAborted), default);
    }

    private static partial class Log
    {
        [LoggerMessage(1020, LogLevel.Debug, "drop_params: {Parameters} left out of the call to {Deployment}, whose provider does not take them")]
        public static partial void ParametersDropped(ILogger logger, string parameters, string deployment);
    }
}
