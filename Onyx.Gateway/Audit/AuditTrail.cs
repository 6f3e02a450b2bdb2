using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace Onyx.Gateway.Audit;

/// <summary>
/// The audit trail a gateway writes to, as its spill files name it: the Redis target (its endpoints, normalized and
/// sorted, and the database; a Sentinel service by its name) or the operator's <see cref="AuditOptions.TrailName"/>,
/// and the stream key. A spill file is replayed only by a gateway of the same trail, so records never cross from one
/// deployment's Redis into another's.
/// </summary>
internal sealed class AuditTrail
{
    private AuditTrail(string name)
    {
        Name = name;
        // Short enough for a file name, long enough that two trails in one directory never share it by chance; the
        // file's header line carries the whole name, and is checked before any replay.
        Key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(name)))[..16];
    }

    /// <summary>The trail's identity, e.g. <c>redis://10.0.0.5:6379/0 onyx:{audit}</c> or <c>prod-eu onyx:{audit}</c>.</summary>
    public string Name { get; }

    /// <summary>A digest of <see cref="Name"/>, in the names of the trail's spill files.</summary>
    public string Key { get; }

    /// <summary>The trail of a gateway on the Redis of <paramref name="connectionString"/>.</summary>
    public static AuditTrail For(string connectionString, AuditOptions options)
    {
        var target = string.IsNullOrWhiteSpace(options.TrailName) ? RedisTarget(connectionString) : options.TrailName.Trim();
        return new AuditTrail($"{target} {options.StreamKey}");
    }

    public override string ToString() => Name;

    /// <summary>
    /// <c>redis://host:port[,host:port…]/db</c>: how the connection string's endpoints name the server, with its
    /// options (password, timeouts, client name) left out, hosts in lower case, default ports filled in, and sorted,
    /// so the replicas of one deployment agree on it whatever order their settings list them in.
    /// </summary>
    private static string RedisTarget(string connectionString)
    {
        var options = ConfigurationOptions.Parse(connectionString);
        options.SetDefaultPorts();
        var endpoints = options.EndPoints.Select(Format).Order(StringComparer.Ordinal);
        var service = string.IsNullOrEmpty(options.ServiceName) ? "" : options.ServiceName + "@";
        var database = (options.DefaultDatabase ?? 0).ToString(CultureInfo.InvariantCulture);
        return $"redis://{service}{string.Join(',', endpoints)}/{database}";
    }

    private static string Format(EndPoint endpoint) => endpoint switch
    {
        DnsEndPoint dns => $"{dns.Host.ToLowerInvariant()}:{dns.Port.ToString(CultureInfo.InvariantCulture)}",
        IPEndPoint ip => ip.ToString(),
        _ => endpoint.ToString() ?? "",
    };
}
