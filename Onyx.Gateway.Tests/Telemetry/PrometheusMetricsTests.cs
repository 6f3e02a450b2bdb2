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
