using Microsoft.Extensions.Logging;

namespace Onyx.AppHost.Gateway;

/// <summary>The AppHost's warnings about the gateway's wiring (event ids 300–399).</summary>
internal static partial class GatewayLog
{
    [LoggerMessage(EventId = 300, Level = LogLevel.Warning,
        Message = "Parameters:together-api-key has no value (user secrets or configuration): the gateway starts without TOGETHER_API_KEY and the primary deployment (Together AI) will be unavailable.")]
    public static partial void TogetherApiKeyMissing(ILogger logger);

    [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message = "LiteLLM config {Path} does not exist; the gateway is given that path anyway.")]
    public static partial void LiteLlmConfigMissing(ILogger logger, string path);

    [LoggerMessage(EventId = 302, Level = LogLevel.Warning,
        Message = "Parameters:master-key has no value (user secrets or configuration): the gateway starts without LITELLM_MASTER_KEY and serves loopback callers without any API key.")]
    public static partial void MasterKeyMissing(ILogger logger);
}
