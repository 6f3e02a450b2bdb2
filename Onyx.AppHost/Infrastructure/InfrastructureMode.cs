using Onyx.AppHost.Configuration;

namespace Onyx.AppHost.Infrastructure;

/// <summary>Where Redis and Ollama come from (<c>Onyx:Infrastructure</c>).</summary>
internal enum InfrastructureMode
{
    /// <summary>Containers when a container runtime answers, otherwise local binaries.</summary>
    Auto,

    /// <summary>The <c>redis</c> and <c>ollama/ollama</c> containers. Always used to publish.</summary>
    Containers,

    /// <summary><c>redis-server</c> and <c>ollama</c> from PATH, run as processes.</summary>
    Local,

    /// <summary>Nothing started: connection strings and URLs come from <c>Onyx:External:*</c>.</summary>
    External,
}

/// <summary>Settles <see cref="InfrastructureMode.Auto"/> and logs the decision once, at start.</summary>
internal static class InfrastructureModeSelector
{
    private static readonly TimeSpan ContainerRuntimeProbeTimeout = TimeSpan.FromSeconds(5);

    public static InfrastructureMode Select(IDistributedApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);

        var (mode, reason) = Decide(builder);
        builder.LogOnStart(logger => InfrastructureLog.ModeSelected(logger, mode, reason));
        return mode;
    }

    private static (InfrastructureMode Mode, string Reason) Decide(IDistributedApplicationBuilder builder)
    {
        if (builder.ExecutionContext.IsPublishMode)
        {
            return (InfrastructureMode.Containers, "publishing describes the container deployment");
        }

        var configured = Parse(builder.Configuration[OnyxConfiguration.Infrastructure]);
        if (configured is not InfrastructureMode.Auto)
        {
            return (configured, $"{OnyxConfiguration.Infrastructure} is set");
        }

        var runtime = ContainerRuntimeProbe.Probe(builder.Configuration, ContainerRuntimeProbeTimeout);
        return runtime.Answers
            ? (InfrastructureMode.Containers, $"container runtime '{runtime.Name}' answers")
            : (InfrastructureMode.Local, $"container runtime '{runtime.Name}' does not answer: {runtime.Detail}");
    }

    private static InfrastructureMode Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "auto" => InfrastructureMode.Auto,
        "containers" => InfrastructureMode.Containers,
        "local" => InfrastructureMode.Local,
        "external" => InfrastructureMode.External,
        _ => throw new DistributedApplicationException(
            $"{OnyxConfiguration.Infrastructure} must be auto, containers, local or external, not '{value}'."),
    };
}
