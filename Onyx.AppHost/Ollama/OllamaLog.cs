using Microsoft.Extensions.Logging;

namespace Onyx.AppHost.Ollama;

/// <summary>What the Ollama integration writes to a resource's console log in the dashboard (event ids 100–199).</summary>
internal static partial class OllamaLog
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Model {Model} is already present on {Server}.")]
    public static partial void ModelAlreadyPresent(ILogger logger, string model, string server);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Pulling model {Model} on {Server}.")]
    public static partial void PullingModel(ILogger logger, string model, string server);

    [LoggerMessage(EventId = 102, Level = LogLevel.Information, Message = "Pull of {Model}: {Status}")]
    public static partial void PullStatus(ILogger logger, string model, string status);

    [LoggerMessage(EventId = 103, Level = LogLevel.Information, Message = "Model {Model} pulled.")]
    public static partial void ModelPulled(ILogger logger, string model);

    [LoggerMessage(EventId = 104, Level = LogLevel.Error, Message = "Could not make model {Model} present on {Server}.")]
    public static partial void PullFailed(ILogger logger, Exception exception, string model, string server);

    [LoggerMessage(EventId = 105, Level = LogLevel.Warning, Message = "{Reason}")]
    public static partial void Unavailable(ILogger logger, string reason);
}
