using System.Globalization;
using Microsoft.Extensions.Configuration;

namespace Onyx.AppHost.Configuration;

/// <summary>
/// The AppHost's own settings (appsettings, environment <c>Onyx__…</c>, or command line <c>--Onyx:…=…</c>).
/// A malformed value stops the AppHost with a message that names the key.
/// </summary>
internal static class OnyxConfiguration
{
    /// <summary><c>auto</c> (default), <c>containers</c>, <c>local</c> or <c>external</c>.</summary>
    public const string Infrastructure = "Onyx:Infrastructure";

    /// <summary><c>true</c> gives the Ollama container all NVIDIA GPUs.</summary>
    public const string OllamaGpu = "Onyx:Ollama:Gpu";

    /// <summary>How many gateway processes run behind its endpoint (default 1).</summary>
    public const string GatewayReplicas = "Onyx:Gateway:Replicas";

    /// <summary>The gateway's HTTP port (default 4000).</summary>
    public const string GatewayPort = "Onyx:Gateway:Port";

    /// <summary>External mode: a Redis connection string.</summary>
    public const string ExternalRedis = "Onyx:External:Redis";

    /// <summary>External mode: the base URL of an Ollama server.</summary>
    public const string ExternalOllamaUrl = "Onyx:External:OllamaUrl";

    /// <summary>Any mode: the base URL that replaces Together AI's for the primary deployment.</summary>
    public const string GatewayPrimaryBaseUrl = "Onyx:Gateway:PrimaryBaseUrl";

    /// <summary>
    /// The AppHost's own data directory, kept across runs: the local <c>redis-server</c>'s data (<c>redis/</c>) and the
    /// gateway's audit spill files (<c>audit/</c>). Default <c>.onyx</c> beside the AppHost project; a relative path is
    /// taken from there.
    /// </summary>
    public const string DataDirectory = "Onyx:DataDirectory";

    /// <summary>How often Redis syncs its append-only file: <c>everysec</c> (default) or the stricter <c>always</c>.</summary>
    public const string RedisAppendFsync = "Onyx:Redis:AppendFsync";

    /// <summary><c>true</c> also starts the sample consumer of the gateway (<c>samples/Onyx.Sample.Chat</c>); default false.</summary>
    public const string SampleEnabled = "Onyx:Sample:Enabled";

    /// <summary>The Together AI key, as Aspire reads the <c>together-api-key</c> parameter (user secrets in development).</summary>
    public const string TogetherApiKeyParameter = "Parameters:together-api-key";

    /// <summary>The gateway's master key, as Aspire reads the <c>master-key</c> parameter.</summary>
    public const string MasterKeyParameter = "Parameters:master-key";

    /// <summary>Sentry's DSN (optional), as Aspire reads the <c>sentry-dsn</c> parameter.</summary>
    public const string SentryDsnParameter = "Parameters:sentry-dsn";

    public static bool GetFlag(this IConfiguration configuration, string key)
    {
        var value = configuration[key];
        if (string.IsNullOrWhiteSpace(value))
        {
            return false;
        }

        return bool.TryParse(value, out var flag)
            ? flag
            : throw new DistributedApplicationException($"{key} must be true or false, not '{value}'.");
    }

    public static int GetInt32(this IConfiguration configuration, string key, int defaultValue, int min, int max)
    {
        var value = configuration[key];
        if (string.IsNullOrWhiteSpace(value))
        {
            return defaultValue;
        }

        return int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var number) && number >= min && number <= max
            ? number
            : throw new DistributedApplicationException($"{key} must be a whole number from {min} to {max}, not '{value}'.");
    }

    /// <summary>An absolute http(s) URL, or <see langword="null"/> when the key is not set.</summary>
    public static string? GetHttpUrl(this IConfiguration configuration, string key)
    {
        var value = configuration[key];
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }

        return Uri.TryCreate(value, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
            ? value
            : throw new DistributedApplicationException($"{key} must be an absolute http or https URL, not '{value}'.");
    }

    public static string? GetNonEmpty(this IConfiguration configuration, string key) =>
        configuration[key] is { Length: > 0 } value && !string.IsNullOrWhiteSpace(value) ? value : null;
}
