using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;

namespace Onyx.Gateway.Health;

/// <summary>The graceful shutdown's settings (<c>Onyx:Shutdown</c>).</summary>
[OptionsSection(SectionName)]
internal sealed class ShutdownOptions
{
    public const string SectionName = "Onyx:Shutdown";

    /// <summary>
    /// How long requests in flight at SIGTERM may run on. Past it they are ended: a stream with an error event, a
    /// call that has not answered yet with a 503.
    /// </summary>
    [DurationBetween("00:00:00", "01:00:00")]
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>The bounds on the options' attributes, checked by a validator generated at compile time.</summary>
[OptionsValidator]
internal sealed partial class ShutdownOptionsValidator : IValidateOptions<ShutdownOptions>;
