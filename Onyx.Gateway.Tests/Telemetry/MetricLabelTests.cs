using System.Diagnostics.Metrics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Model;
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

        ICallObserver observer = metrics;
        observer.CallEnded(Call("made-up-by-a-client", "made-up/deployment", "a-model-the-upstream-named"));
        observer.CallEnded(Call("manus-primary", "openai/gpt-x", "openai/gpt-x"));
        observer.Resumed("made-up-by-a-client", new ResumedAt("made-up/deployment", "openai/gpt-x", 3, "stream_broken", "prefill"));
        metrics.RateLimited("requests", "user", "another-made-up-model");

        var values = tags.Where(t => t.Key is "onyx.alias" or "onyx.deployment" or "gen_ai.request.model" or "gen_ai.response.model")
            .Select(t => (string?)t.Value).ToHashSet();
        Assert.Equal(["manus-primary", "openai/gpt-x", "unknown"], values.Order(StringComparer.Ordinal));
    }

    private static CallRecord Call(string alias, string deployment, string responseModel) => new()
    {
        Timestamp = DateTimeOffset.UnixEpoch,
        RequestId = "req-1",
        Alias = alias,
        Deployment = deployment,
        Provider = "openai",
        ResponseModel = responseModel,
        Stream = false,
        Status = 200,
        Fallback = false,
        AttemptCount = 1,
        Steps = [],
        Tokens = new TokenCounts(1, 1, 2, Estimated: false),
        Duration = TimeSpan.FromSeconds(1),
    };
}
