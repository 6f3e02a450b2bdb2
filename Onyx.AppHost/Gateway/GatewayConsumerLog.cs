using Microsoft.Extensions.Logging;

namespace Onyx.AppHost.Gateway;

/// <summary>The AppHost's notes about the gateway's consumers (event ids 9100–9199).</summary>
internal static partial class GatewayConsumerLog
{
    [LoggerMessage(EventId = 9100, Level = LogLevel.Warning,
        Message = "{Consumer} references the gateway and Parameters:master-key has no value: the gateway now refuses callers without a key (it takes {Consumer}'s key, Parameters:{KeyParameter}); set a master key to call it yourself.")]
    public static partial void ConsumerClosesOpenGateway(ILogger logger, string consumer, string keyParameter);
}
