using System.Globalization;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Onyx.Gateway.Security;

/// <summary>
/// Kestrel's limits, chosen for a public gateway rather than left to chance: the gateway's defaults first, then
/// whatever <c>Kestrel:Limits:*</c> (Kestrel's own configuration names) says. The request body size is not here:
/// it is <c>Onyx:Limits:MaxRequestBodyBytes</c>, which the 413 message quotes.
/// </summary>
internal static class TransportLimits
{
    /// <summary>A client must send its request line and headers within this (slow-header attacks).</summary>
    public static readonly TimeSpan RequestHeadersTimeout = TimeSpan.FromSeconds(10);

    /// <summary>An idle kept-alive connection is closed after this.</summary>
    public static readonly TimeSpan KeepAliveTimeout = TimeSpan.FromSeconds(120);

    /// <summary>Open connections at once; more are refused at accept (each one costs memory even when idle).</summary>
    public const long MaxConcurrentConnections = 10_000;

    /// <summary>All request headers together (OpenAI SDKs send ~1 KB).</summary>
    public const int MaxRequestHeadersTotalSize = 32 * 1024;

    public const int MaxRequestHeaderCount = 100;

    /// <summary>A body arriving slower than this on average, after the grace period, is cut off (slow-body attacks).</summary>
    public const double MinRequestBodyBytesPerSecond = 240;

    public static readonly TimeSpan MinRequestBodyGracePeriod = TimeSpan.FromSeconds(5);

    public static void Apply(KestrelServerLimits limits, IConfigurationSection section)
    {
        limits.RequestHeadersTimeout = RequestHeadersTimeout;
        limits.KeepAliveTimeout = KeepAliveTimeout;
        limits.MaxConcurrentConnections = MaxConcurrentConnections;
        limits.MaxRequestHeadersTotalSize = MaxRequestHeadersTotalSize;
        limits.MaxRequestHeaderCount = MaxRequestHeaderCount;
        limits.MinRequestBodyDataRate = new MinDataRate(MinRequestBodyBytesPerSecond, MinRequestBodyGracePeriod);

        section.Bind(limits);

        // MinDataRate has no setters, so the binder cannot fill it in place: read its two values here.
        var rate = section.GetSection(nameof(KestrelServerLimits.MinRequestBodyDataRate));
        if (rate.Exists())
        {
            var current = limits.MinRequestBodyDataRate ?? new MinDataRate(MinRequestBodyBytesPerSecond, MinRequestBodyGracePeriod);
            var bytesPerSecond = rate[nameof(MinDataRate.BytesPerSecond)] is { } text
                ? double.Parse(text, CultureInfo.InvariantCulture)
                : current.BytesPerSecond;
            var grace = rate[nameof(MinDataRate.GracePeriod)] is { } period
                ? TimeSpan.Parse(period, CultureInfo.InvariantCulture)
                : current.GracePeriod;
            limits.MinRequestBodyDataRate = new MinDataRate(bytesPerSecond, grace);
        }
    }
}
