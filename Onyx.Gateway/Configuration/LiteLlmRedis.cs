using System.Globalization;

namespace Onyx.Gateway.Configuration;

/// <summary>
/// Redis as a LiteLLM config names it: <c>router_settings.redis_host</c>/<c>redis_port</c>/<c>redis_password</c>, or
/// <c>router_settings.redis_url</c>. Each value may be a literal, <c>${VAR}</c> or <c>os.environ/VAR</c>. The password
/// is kept apart from the endpoint so that nothing that prints the endpoint can print it.
/// </summary>
internal sealed record LiteLlmRedis(string Host, int Port, string? User, string? Password, bool Ssl, int? Database, string NamedBy)
{
    public const string HostKey = "router_settings:redis_host";
    public const string PortKey = "router_settings:redis_port";
    public const string PasswordKey = "router_settings:redis_password";
    public const string UrlKey = "router_settings:redis_url";

    private const int DefaultPort = 6379;

    /// <summary><c>host:port</c>, as StackExchange.Redis takes an endpoint (IPv6 hosts in brackets).</summary>
    public string EndPoint => (Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]" : Host) + ":" + Port.ToString(CultureInfo.InvariantCulture);

    /// <summary>The endpoint only: a record would print every member, the password included.</summary>
    public override string ToString() => EndPoint;

    /// <summary>Whether the config file names Redis at all (valid or not).</summary>
    public static bool IsNamed(IConfiguration configuration) =>
        new[] { HostKey, PortKey, PasswordKey, UrlKey }.Any(key => !string.IsNullOrWhiteSpace(configuration[key]));

    /// <summary>The Redis the config names, or null: none named, or <paramref name="error"/> says (naming the key) why it cannot be used.</summary>
    public static LiteLlmRedis? Read(IConfiguration configuration, out string? error)
    {
        error = null;
        if (!IsNamed(configuration))
        {
            return null;
        }
        string? Value(string key, ref string? problem)
        {
            var raw = configuration[key];
            var value = EnvironmentReferences.Resolve(raw, configuration);
            if (!string.IsNullOrWhiteSpace(raw) && value is null)
            {
                problem ??= $"{key} refers to '{raw.Replace("os.environ/", "", StringComparison.Ordinal)}', which is not set.";
            }
            return value;
        }
        var url = Value(UrlKey, ref error);
        var host = Value(HostKey, ref error);
        var port = Value(PortKey, ref error);
        var password = Value(PasswordKey, ref error);
        if (error is not null)
        {
            return null;
        }
        if (url is not null)
        {
            if (host is not null || port is not null || password is not null)
            {
                error = $"{UrlKey} and {HostKey}/{PortKey}/{PasswordKey} both name Redis: set one or the other.";
                return null;
            }
            return FromUrl(url, out error);
        }
        if (host is null)
        {
            error = $"{(port is not null ? PortKey : PasswordKey)} is set, but {HostKey} (or {UrlKey}) is not.";
            return null;
        }
        var portNumber = DefaultPort;
        if (port is not null && !(int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out portNumber) && portNumber is >= 1 and <= 65535))
        {
            error = $"{PortKey} must be a port number from 1 to 65535; got '{port}'.";
            return null;
        }
        return new LiteLlmRedis(host, portNumber, null, password, false, null, port is null ? HostKey : $"{HostKey} and {PortKey}");
    }

    private static LiteLlmRedis? FromUrl(string url, out string? error)
    {
        error = null;
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("redis" or "rediss") || string.IsNullOrEmpty(uri.Host))
        {
            // The value is not repeated: a URL carries the password.
            error = $"{UrlKey} must be redis://[user:password@]host[:port][/db] (rediss:// for TLS).";
            return null;
        }
        string? user = null, password = null;
        if (uri.UserInfo.Length > 0)
        {
            var colon = uri.UserInfo.IndexOf(':', StringComparison.Ordinal);
            user = colon < 0 ? null : Uri.UnescapeDataString(uri.UserInfo[..colon]);
            password = Uri.UnescapeDataString(colon < 0 ? uri.UserInfo : uri.UserInfo[(colon + 1)..]);
            user = string.IsNullOrEmpty(user) ? null : user;
        }
        int? database = null;
        var path = uri.AbsolutePath.Trim('/');
        if (path.Length > 0)
        {
            if (!int.TryParse(path, NumberStyles.None, CultureInfo.InvariantCulture, out var db))
            {
                error = $"{UrlKey}: the path must be a database number (redis://host:6379/0).";
                return null;
            }
            database = db;
        }
        return new LiteLlmRedis(uri.IdnHost, uri.IsDefaultPort || uri.Port < 0 ? DefaultPort : uri.Port, user, password, uri.Scheme == "rediss", database, UrlKey);
    }
}
