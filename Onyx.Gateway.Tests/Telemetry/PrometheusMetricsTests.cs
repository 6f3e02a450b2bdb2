using System.Net;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Telemetry;

/// <summary>
/// <c>GET /metrics</c>: after a known sequence of calls, the Prometheus scrape shows exactly those counts and sums.
/// Alone in its collection: OpenTelemetry's meter listener hears every meter named <c>Onyx.Gateway</c> in the
/// process, so gateways of tests running beside it would add their calls to its counts.
/// </summary>
[Collection(MetricsCollection.Name)]
public sealed class PrometheusMetricsTests : GatewayTest
{
    private const string Primary = "together_ai/deepseek-ai/DeepSeek-V3";
    private const string Fallback = "ollama/mistral:7b-instruct";

    protected override Dictionary<string, string?> Settings => new()
    {
        ["litellm_settings:rate_limit:rpm"] = "3",
        // Prices both ways: Onyx's per-million names in litellm_params, LiteLLM's per-token names in model_info.
        ["model_list:0:litellm_params:input_cost_per_million_tokens"] = "1.25",
        ["model_list:0:litellm_params:output_cost_per_million_tokens"] = "2.5",
        ["model_list:1:model_info:input_cost_per_token"] = "0.000001",
        ["model_list:1:model_info:output_cost_per_token"] = "0.000002",
    };

    [Fact]
    public async Task ScrapeShowsTheExactCountsTokenSumsAndCostOfASuccessAFallbackAndARefusal()
    {
        // A success, a fallback (the primary answers 503), a streamed success, then a refusal (rpm 3).
        using (var ok = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        Gateway.Primary.Fault = FakeFault.Status(503);
        using (var fallback = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            Assert.Equal("true", fallback.Headers.GetValues("x-onyx-fallback").Single());
        }
        Gateway.Primary.Fault = FakeFault.None;
        using (var stream = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true))))
        {
            await stream.Content.ReadAsStringAsync();
        }
        using (var refused = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        }

        using var response = await Client.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType!.MediaType, StringComparison.Ordinal);
        var scrape = Prometheus.Parse(await response.Content.ReadAsStringAsync());

        Assert.Equal(2, scrape.Sum("onyx_gateway_requests_total", ("onyx_deployment", Primary), ("onyx_outcome", "success"), ("onyx_fallback", "false")));
        Assert.Equal(1, scrape.Sum("onyx_gateway_requests_total", ("onyx_deployment", Fallback), ("onyx_outcome", "success"), ("onyx_fallback", "true")));
        Assert.Equal(3, scrape.Sum("onyx_gateway_requests_total", ("onyx_alias", "manus-primary")));
        Assert.Equal(1, scrape.Sum("onyx_gateway_fallbacks_total", ("onyx_alias", "manus-primary"), ("onyx_deployment", Fallback)));
        // The 503 was asked once more before the fallback: two upstream errors.
        Assert.Equal(2, scrape.Sum("onyx_gateway_upstream_errors_total", ("onyx_deployment", Primary), ("onyx_error_kind", "status"), ("onyx_reason", "http_503")));
        Assert.Equal(1, scrape.Sum("onyx_gateway_rate_limit_refusals_total", ("onyx_alias", "manus-primary"), ("onyx_limit", "requests")));
        Assert.Equal(0, scrape.Sum("onyx_gateway_streams_active"));
        Assert.Equal(0, scrape.Sum("onyx_gateway_circuit_breaker_state", ("onyx_deployment", Primary)));

        // Tokens: every fake answer reports 12 prompt tokens and one completion token per streamed token.
        var completion = FakeBehavior.DefaultTokens.Count;
        Assert.Equal(3 * 12, scrape.Sum("gen_ai_client_token_usage_sum", ("gen_ai_token_type", "input")));
        Assert.Equal(3 * completion, scrape.Sum("gen_ai_client_token_usage_sum", ("gen_ai_token_type", "output")));
        Assert.Equal(12, scrape.Sum("gen_ai_client_token_usage_sum", ("gen_ai_provider_name", "ollama"), ("gen_ai_token_type", "input")));
        Assert.Equal(3, scrape.Sum("gen_ai_client_operation_duration_seconds_count", ("gen_ai_request_model", "manus-primary")));
        // Time to first chunk is a streaming measure: the one streamed call.
        Assert.Equal(1, scrape.Sum("gen_ai_client_operation_time_to_first_chunk_seconds_count"));

        // Cost: 2 × (12 × 1.25 + 4 × 2.5) / 1M on the primary; (12 × 1 + 4 × 2) / 1M on the fallback.
        Assert.Equal(2 * (12 * 1.25e-6 + completion * 2.5e-6), scrape.Sum("onyx_gateway_cost_total", ("onyx_deployment", Primary)), 12);
        Assert.Equal(12 * 1e-6 + completion * 2e-6, scrape.Sum("onyx_gateway_cost_total", ("onyx_deployment", Fallback)), 12);

        // Low cardinality, no content: no request ids, users, prompts or keys among the labels.
        var labels = scrape.LabelNames("onyx_", "gen_ai_");
        Assert.Subset(new HashSet<string>
        {
            "otel_scope_name", "onyx_alias", "onyx_deployment", "onyx_outcome", "onyx_fallback", "onyx_error_kind", "onyx_reason",
            "onyx_limit", "onyx_scope", "onyx_state", "onyx_cause", "onyx_from", "onyx_to", "onyx_audit_destination", "le", "error_type",
            "gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model", "gen_ai_token_type",
        }, labels);
        Assert.DoesNotContain(scrape.Lines, l => l.Contains("Say hello", StringComparison.Ordinal) || l.Contains(GatewayHost.TogetherKey, StringComparison.Ordinal));
    }

    [Fact]
    public async Task ScrapeCountsAResumedStreamAndItsBrokenUpstream()
    {
        Gateway.Primary.Update(b => b with { Tokens = ["Once", " upon", " a", " time"], Fault = FakeFault.DropAfter(2) });
        Gateway.Fallback.Update(b => b with { Tokens = ["Once", " upon", " a", " time", " there", " was"], Continuation = FakeContinuation.Honours });
        using (var stream = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true))))
        {
            Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
            // The whole answer arrived: the fallback continued it.
            var body = await stream.Content.ReadAsStringAsync();
            Assert.True(Sse.Content(Sse.Events(body)) == "Once upon a time there was", body + string.Join("\n", Gateway.Logs.Records.Where(r => r.Level >= Microsoft.Extensions.Logging.LogLevel.Warning).Select(r => r.Message)));
        }

        var scrape = Prometheus.Parse(await Client.GetStringAsync("/metrics"));
        Assert.Equal(1, scrape.Sum("onyx_gateway_stream_resumes_total", ("onyx_alias", "manus-primary"), ("onyx_from", Primary), ("onyx_to", Fallback)));
        Assert.Equal(1, scrape.Sum("onyx_gateway_upstream_errors_total", ("onyx_deployment", Primary), ("onyx_error_kind", "stream_broken")));
        Assert.Equal(1, scrape.Sum("onyx_gateway_requests_total", ("onyx_outcome", "success")));
        Assert.Equal(0, scrape.Sum("onyx_gateway_streams_active"));
    }

    [Fact]
    public async Task ScrapeIsOpenLikeHealth()
    {
        using var response = await Client.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        // The runtime's own metrics are there from the start.
        Assert.Contains("# TYPE dotnet_", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}

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

/// <summary>The master key can be required for <c>/metrics</c>.</summary>
public sealed class PrometheusMetricsWithKeyTests : GatewayTest
{
    private const string MasterKey = "sk-master-metrics-5d1e";

    protected override Dictionary<string, string?> Settings => new()
    {
        ["LITELLM_MASTER_KEY"] = MasterKey,
        ["Onyx:Metrics:RequireMasterKey"] = "true",
    };

    [Fact]
    public async Task ScrapeNeedsTheMasterKeyWhenConfiguredSo()
    {
        using var anonymous = await Client.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);

        using var admin = Gateway.CreateClient(MasterKey);
        using var allowed = await admin.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        Assert.Contains("# TYPE dotnet_", await allowed.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
