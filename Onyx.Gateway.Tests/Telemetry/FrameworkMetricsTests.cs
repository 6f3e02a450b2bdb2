using System.Net;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Telemetry;

/// <summary>
/// The framework's metrics keep at most <c>OpenTelemetry:Metrics:FrameworkCardinalityLimit</c> tag combinations each
/// (OpenTelemetry reserves memory for all of them up front); Onyx's own metrics are not cut by it.
/// </summary>
[Collection(MetricsCollection.Name)]
public sealed class MetricCardinalityTests : GatewayTest
{
    protected override Dictionary<string, string?> Settings => new() { ["OpenTelemetry:Metrics:FrameworkCardinalityLimit"] = "2" };

    [Fact]
    public async Task AFrameworkMetricPastItsLimitFoldsTheRestIntoOneOverflowSeriesAndLosesNoCount()
    {
        // Four combinations of route and status on http.server.request.duration.
        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync("/alive")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync("/v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await Client.GetAsync("/no-such-page")).StatusCode);
        using (var ok = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        Gateway.Primary.Fault = FakeFault.Status(503);
        using (var fallback = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            Assert.Equal("true", fallback.Headers.GetValues("x-onyx-fallback").Single());
        }

        var scrape = Prometheus.Parse(await Client.GetStringAsync("/metrics"));
        const string requests = "http_server_request_duration_seconds_count";
        // Two combinations kept, the rest in the overflow series, none lost: the gateway's five requests and the
        // fake upstreams' (they run in this process, and the meter listener hears their server's meter too).
        var upstreamCalls = Gateway.Primary.Calls + Gateway.Fallback.Calls;
        // The 503 is asked once more: two of the primary's, one of the fallback's, the first success.
        Assert.Equal(4, upstreamCalls);
        Assert.Equal(3, scrape.Count(requests));
        Assert.Equal(1, scrape.Count(requests, ("otel_metric_overflow", "true")));
        Assert.True(5 + upstreamCalls == scrape.Sum(requests), string.Join("\n", scrape.Lines.Where(l => l.StartsWith(requests, StringComparison.Ordinal))));
        // The limit leaves the instrument's own bucket boundaries (ASP.NET Core advises 5 ms to 10 s, in seconds).
        Assert.True(scrape.Count("http_server_request_duration_seconds_bucket", ("le", "0.005")) > 0);
        Assert.Equal(0, scrape.Count("http_server_request_duration_seconds_bucket", ("le", "5000")));
        // Onyx's own metrics keep every combination: two outcomes of the same alias, no overflow.
        Assert.Equal(2, scrape.Count("onyx_gateway_requests_total"));
        Assert.Equal(0, scrape.Count("onyx_gateway_requests_total", ("otel_metric_overflow", "true")));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-5")]
    public async Task ALimitBelowOneStopsTheStartNamingTheKey(string limit)
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAsync(new() { ["OpenTelemetry:Metrics:FrameworkCardinalityLimit"] = limit }));
        Assert.Contains($"OpenTelemetry:Metrics:FrameworkCardinalityLimit must be at least 1 (it is {limit}).", error.ToString(), StringComparison.Ordinal);
    }
}

/// <summary>
/// Framework instruments recorded on every request that say nothing the kept metrics do not are dropped by default
/// (<c>OpenTelemetry:Metrics:Drop</c>); an operator can bring them back or drop others.
/// </summary>
[Collection(MetricsCollection.Name)]
public sealed class DroppedMetricsTests : GatewayTest
{
    [Fact]
    public async Task TheDefaultListKeepsRequestAndUpstreamDurationsAndDropsThePerRequestInternals()
    {
        var scrape = await DroppedMetrics.ScrapeAfterAChatAsync(Client);

        Assert.True(scrape.Sum("http_server_request_duration_seconds_count") >= 1);
        Assert.True(scrape.Sum("http_client_request_duration_seconds_count") >= 1);
        Assert.Equal(1, scrape.Sum("gen_ai_client_operation_duration_seconds_count"));
        Assert.DoesNotContain(scrape.Lines, l => DroppedMetrics.ByDefault.Any(d => l.StartsWith(d, StringComparison.Ordinal)));
    }

}

/// <summary>What the two tests of dropped instruments share: the default list, and a scrape after one chat.</summary>
file static class DroppedMetrics
{
    public static readonly string[] ByDefault =
    [
        "aspnetcore_routing_match_attempts", "aspnetcore_authentication_authenticate_duration", "aspnetcore_authorization_attempts",
        "http_client_open_connections", "http_client_request_time_in_queue", "aspnetcore_memory_pool_",
    ];

    public static async Task<Prometheus> ScrapeAfterAChatAsync(HttpClient client)
    {
        using (var ok = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        return Prometheus.Parse(await client.GetStringAsync("/metrics"));
    }
}

[Collection(MetricsCollection.Name)]
public sealed class OperatorDroppedMetricsTests : GatewayTest
{
    protected override Dictionary<string, string?> Settings => new() { ["OpenTelemetry:Metrics:Drop"] = "http.server.*" };

    [Fact]
    public async Task AnOperatorsListReplacesTheDefault()
    {
        var scrape = await DroppedMetrics.ScrapeAfterAChatAsync(Client);

        Assert.DoesNotContain(scrape.Lines, l => l.StartsWith("http_server_", StringComparison.Ordinal));
        Assert.True(scrape.Sum("http_client_request_duration_seconds_count") >= 1);
        // Not on the operator's list, so collected again.
        foreach (var name in DroppedMetrics.ByDefault)
        {
            Assert.Contains(scrape.Lines, l => l.StartsWith(name, StringComparison.Ordinal));
        }
    }
}
