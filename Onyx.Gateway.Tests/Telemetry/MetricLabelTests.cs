using System.Diagnostics.Metrics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Model;
using Onyx.Gateway.Routing;
using Onyx.Gateway.Telemetry;

namespace Onyx.Gateway.Tests.Telemetry;

/// <summary>The gateway's meter labels only what the config names: text a client or an upstream chose is "unknown".</summary>
public sealed class MetricLabelTests
{
    [Fact]
    public void LabelsWhatTheConfigDoesNotNameAsUnknown()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var factory = services.GetRequiredService<IMeterFactory>();
        var options = new LiteLlmOptions
        {
            ModelList = [new ModelListEntry { ModelName = "manus-primary", LiteLlmParams = new LiteLlmParams { Model = "openai/gpt-x", ApiBase = "http://127.0.0.1:1/v1" } }],
        };
        var routing = RoutingTable.Build(options, new OnyxOptions(), new ConfigurationBuilder().Build(), out var errors);
        Assert.Empty(errors);
        var metrics = new GatewayMetrics(factory, routing);
        var tags = new List<KeyValuePair<string, object?>>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Scope == factory)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, _, measured, _) => tags.AddRange(measured.ToArray()));
        listener.SetMeasurementEventCallback<double>((_, _, measured, _) => tags.AddRange(measured.ToArray()));
        listener.Start();

        metrics.Request("made-up-by-a-client", "made-up/deployment", "success", fallback: false);
        metrics.Request("manus-primary", "openai/gpt-x", "success", fallback: false);
        metrics.RateLimited("requests", "user", "another-made-up-model");
        metrics.Completed("openai", "made-up-by-a-client", "a-model-the-upstream-named", TimeSpan.FromSeconds(1), null, 1, 1, null);

        var values = tags.Where(t => t.Key is "onyx.alias" or "onyx.deployment" or "gen_ai.request.model" or "gen_ai.response.model")
            .Select(t => (string?)t.Value).ToHashSet();
        Assert.Equal(["manus-primary", "openai/gpt-x", "unknown"], values.Order(StringComparer.Ordinal));
    }
}
