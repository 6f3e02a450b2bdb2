namespace Onyx.Gateway.Tests.TestHost;

/// <summary>
/// The tests that read <c>/metrics</c> and run alone: OpenTelemetry's meter listener hears every meter of its name in the
/// process, so gateways of tests running beside them would add to their counts.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MetricsCollection
{
    public const string Name = "Metrics, alone";
}
