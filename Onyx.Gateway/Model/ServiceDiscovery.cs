
namespace Onyx.Gateway.Model;

/// <summary>
/// Maps a config URL such as <c>http://ollama:11434</c> onto the endpoint Aspire provides for the service
/// <c>ollama</c> (<c>services:ollama:http:0</c>), keeping the path.
/// </summary>
/// <remarks>
/// Written by hand rather than through Microsoft.Extensions.ServiceDiscovery's HttpClient handler: that handler
/// resolves on every request, while an upstream's address is fixed for the process lifetime; resolving once at
/// start-up keeps the hot path free of it and lets health report the resolved address. The lookup reads the
/// same configuration keys the ServiceDiscovery library reads.
/// </remarks>
internal static class ServiceDiscovery
{
    public static Uri Resolve(Uri configured, IConfiguration configuration)
    {
        var endpoints = configuration.GetSection($"services:{configured.Host}");
        var target = endpoints[$"{configured.Scheme}:0"] ?? endpoints["http:0"] ?? endpoints["https:0"];
        if (target is null || !Uri.TryCreate(target, UriKind.Absolute, out var resolved))
        {
            return configured;
        }
        var builder = new UriBuilder(resolved) { Path = configured.AbsolutePath };
        return builder.Uri;
    }
}
