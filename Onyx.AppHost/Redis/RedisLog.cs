using Microsoft.Extensions.Logging;

namespace Onyx.AppHost.Redis;

/// <summary>Where the AppHost's Redis keeps its data (event ids 8040–8049).</summary>
internal static partial class RedisLog
{
    [LoggerMessage(EventId = 8040, Level = LogLevel.Information,
        Message = "Redis keeps its data in {DataDirectory} (append-only file, appendfsync {AppendFsync}); the gateway's audit spill files go to {SpillDirectory}.")]
    public static partial void LocalData(ILogger logger, string dataDirectory, string appendFsync, string spillDirectory);
}
