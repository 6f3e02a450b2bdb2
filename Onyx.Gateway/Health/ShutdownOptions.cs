using Microsoft.Extensions.Options;

namespace Onyx.Gateway.Health;

/// <summary>The graceful shutdown's settings (<c>Onyx:Shutdown</c>).</summary>
internal sealed class ShutdownOptions
{
    public const string SectionName = "Onyx:Shutdown";

    /// <summary>The longest the longest drain may take.</summary>
    public static readonly TimeSpan MaxDrainTimeout = TimeSpan.FromHours(1);

    /// <summary>
    /// How long requests in flight at SIGTERM may run on. Past it they are ended: a stream with an error event, a
    /// call that has not answered yet with a 503.
    /// </summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(30);
}

internal sealed class ShutdownOptionsValidator : IValidateOptions<ShutdownOptions>
{
    public ValidateOptionsResult Validate(string? name, ShutdownOptions options) =>
        options.DrainTimeout < TimeSpan.Zero || options.DrainTimeout > ShutdownOptions.MaxDrainTimeout
            ? ValidateOptionsResult.Fail($"{ShutdownOptions.SectionName}:DrainTimeout must be between 00:00:00 and {ShutdownOptions.MaxDrainTimeout:c}, not {options.DrainTimeout:c}.")
            : ValidateOptionsResult.Success;
}
