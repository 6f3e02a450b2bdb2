using System.Net;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace Onyx.Gateway.Auth;

/// <summary>
/// A gateway without any key serves whoever reaches it. That is allowed only while it listens on loopback alone
/// (a developer's machine, or Aspire's proxy in front of it), and said loudly; listening on any other address
/// without a key stops the start-up.
/// </summary>
internal sealed partial class OpenAccessGuard(KeyRegistry keys, AccessConfiguration access, IServer server, ILogger<OpenAccessGuard> logger)
    : IHostedLifecycleService
{
    public Task StartedAsync(CancellationToken cancellationToken)
    {
        if (access.MasterKeyIsLiteral)
        {
            Log.LiteralMasterKey(logger);
        }
        if (!keys.Open)
        {
            return Task.CompletedTask;
        }
        var addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        var exposed = addresses.Where(a => !IsLoopback(a)).ToList();
        if (exposed.Count > 0)
        {
            throw new InvalidOperationException(
                $"No API key is configured and the gateway listens on {string.Join(", ", exposed)}: refusing to serve without a key " +
                $"beyond loopback. Set {AccessConfiguration.MasterKeyVariable} (or general_settings.master_key), or listen on 127.0.0.1 only.");
        }
        Log.OpenOnLoopback(logger, string.Join(", ", addresses));
        return Task.CompletedTask;
    }

    internal static bool IsLoopback(string address)
    {
        if (!Uri.TryCreate(address.Replace("://+", "://0.0.0.0", StringComparison.Ordinal).Replace("://*", "://0.0.0.0", StringComparison.Ordinal),
                UriKind.Absolute, out var uri))
        {
            return false;
        }
        return uri.IsLoopback || (IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(6001, LogLevel.Critical, "NO API KEY CONFIGURED: the gateway serves anyone who can reach {Addresses} without a key (allowed on loopback only). Set LITELLM_MASTER_KEY or general_settings.master_key before exposing it")]
        public static partial void OpenOnLoopback(ILogger logger, string addresses);

        [LoggerMessage(6002, LogLevel.Warning, "general_settings.master_key is written in the config file; reference a secret instead (os.environ/LITELLM_MASTER_KEY)")]
        public static partial void LiteralMasterKey(ILogger logger);
    }
}
