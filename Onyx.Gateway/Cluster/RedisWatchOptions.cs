using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;

namespace Onyx.Gateway.Cluster;

/// <summary>How <see cref="RedisConnectionWatch"/> checks the shared Redis (section <c>Onyx:Redis</c>).</summary>
[OptionsSection(SectionName)]
internal sealed class RedisWatchOptions
{
    public const string SectionName = "Onyx:Redis";

    /// <summary>How often the watch pings Redis, whether it is up (to notice a stall) or down (to notice it is back).</summary>
    [DurationBetween("00:00:00.010", "00:10:00")]
    public TimeSpan PingInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>A ping with no answer by then counts as Redis being down.</summary>
    [DurationBetween("00:00:00.001", "00:01:00")]
    public TimeSpan PingTimeout { get; set; } = TimeSpan.FromMilliseconds(500);
}

/// <summary>The bounds on the options' attributes, checked by a validator generated at compile time.</summary>
[OptionsValidator]
internal sealed partial class RedisWatchOptionsValidator : IValidateOptions<RedisWatchOptions>;
