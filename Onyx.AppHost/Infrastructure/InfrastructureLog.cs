using Microsoft.Extensions.Logging;

namespace Onyx.AppHost.Infrastructure;

/// <summary>The AppHost's infrastructure decisions (event ids 200–299).</summary>
internal static partial class InfrastructureLog
{
    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Infrastructure: {Mode} ({Reason}).")]
    public static partial void ModeSelected(ILogger logger, InfrastructureMode mode, string reason);

    [LoggerMessage(EventId = 201, Level = LogLevel.Warning,
        Message = "Ollama unavailable: no container runtime and no `ollama` on PATH; the fallback deployment manus-fallback will be reported unavailable")]
    public static partial void OllamaUnavailable(ILogger logger);

    [LoggerMessage(EventId = 202, Level = LogLevel.Information,
        Message = "External infrastructure: Redis {RedisState}, Ollama {OllamaUrl}.")]
    public static partial void ExternalInfrastructure(ILogger logger, string redisState, string ollamaUrl);

    [LoggerMessage(EventId = 203, Level = LogLevel.Information, Message = "Local {Program}: {Path}.")]
    public static partial void LocalProgram(ILogger logger, string program, string path);
}
