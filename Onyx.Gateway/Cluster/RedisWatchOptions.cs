using Microsoft.Extensions.Options;

namespace Onyx.Gateway.Cluster;

/// <summary>How <see cref="RedisConnectionWatch"/> checks the shared Redis (section <c>Onyx:Redis</c>).</summary>
internal sealed class RedisWatchOptions
{
    public const string SectionName = "Onyx:Redis";

    /// <summary>How often the watch pings Redis, whether it is up (to notice a stall) or down (to notice it is back).</summary>
    public TimeSpan PingInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>A ping with no answer by then counts as Redis being down.</summary>
    public TimeSpan PingTimeout { get; set; } = TimeSpan.FromMilliseconds(500);
}

/// <summary>
/// Hand-written rather than DataAnnotations: the generated validator names the property
/// (<c>RedisWatchOptions.PingTimeout</c>), and an operator needs the key to fix.
/// </summary>
internal sealed class RedisWatchOptionsValidator : IValidateOptions<RedisWatchOptions>
{
    private static readonly TimeSpan MinInterval = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan MaxInterval = TimeSpan.FromMinutes(10);
    private static readonly TimeSpan MinTimeout = TimeSpan.FromMilliseconds(1);
    private static readonly TimeSpan MaxTimeout = TimeSpan.FromMinutes(1);

    public ValidateOptionsResult Validate(string? name, RedisWatchOptions options)
    {
        var errors = new List<string>();
        if (options.PingInterval < MinInterval || options.PingInterval > MaxInterval)
        {
            errors.Add($"{RedisWatchOptions.SectionName}:PingInterval must be between {MinInterval:c} and {MaxInterval:c}, not {options.PingInterval:c}.");
        }
        if (options.PingTimeout < MinTimeout || options.PingTimeout > MaxTimeout)
        {
            errors.Add($"{RedisWatchOptions.SectionName}:PingTimeout must be between {MinTimeout:c} and {MaxTimeout:c}, not {options.PingTimeout:c}.");
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
