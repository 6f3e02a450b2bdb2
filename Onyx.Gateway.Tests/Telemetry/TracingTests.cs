using System.Collections;
using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;
using OpenTelemetry.Trace;

namespace Onyx.Gateway.Tests.Telemetry;

/// <summary>
/// The spans of a failed-over request, captured with OpenTelemetry's in-memory exporter: the gateway's call span
/// under ASP.NET Core's, one client span per upstream attempt, and the trace context carried to the upstream.
/// </summary>
public sealed class TracingTests : GatewayTest
{
    private readonly Spans _spans = new();

    // Traces are built only where something exports them: here, the in-memory exporter.
    protected override Dictionary<string, string?> Settings => new() { ["OpenTelemetry:Traces"] = "true" };

    protected override Action<IServiceCollection> Services => services =>
        services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddInMemoryExporter(_spans));

    [Fact]
    public async Task FailedOverRequestHasACallSpanAndAnAttemptSpanPerDeploymentWithWhyItFailedOver()
    {
        Gateway.Primary.Fault = FakeFault.Status(503);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody()) };
        request.Headers.Add("x-request-id", "req-trace-1");
        var traceId = await SendInTraceAsync(request, HttpStatusCode.OK);

        var trace = await _spans.WaitForCallAsync(traceId, TimeSpan.FromSeconds(10));
        var call = trace.Single(s => s.Source.Name == "Onyx.Gateway" && s.Kind == ActivityKind.Internal);
        Assert.Equal("chat manus-primary", call.DisplayName);
        var server = trace.Single(s => s.SpanId == call.ParentSpanId);
        Assert.Equal(ActivityKind.Server, server.Kind);
        Assert.Equal("Microsoft.AspNetCore", server.Source.Name);
        Assert.Equal("chat", call.GetTagItem("gen_ai.operation.name"));
        Assert.Equal("manus-primary", call.GetTagItem("gen_ai.request.model"));
        Assert.Equal("req-trace-1", call.GetTagItem("onyx.request_id"));
        Assert.Equal("success", call.GetTagItem("onyx.outcome"));
        Assert.Equal(true, call.GetTagItem("onyx.fallback"));
        // The 503 is asked once more (an attempt span of its own), then the fallback serves.
        Assert.Equal(3, call.GetTagItem("onyx.attempts"));
        Assert.Equal("ollama/mistral:7b-instruct", call.GetTagItem("onyx.deployment"));
        Assert.Equal(ActivityStatusCode.Unset, call.Status);

        var attempts = trace.Where(s => s.Source.Name == "Onyx.Gateway" && s.Kind == ActivityKind.Client).OrderBy(s => s.StartTimeUtc).ToList();
        Assert.Equal(3, attempts.Count);
        Assert.All(attempts, a => Assert.Equal(call.SpanId, a.ParentSpanId));
        Assert.Equal("http_503", attempts[1].GetTagItem("onyx.failover.reason"));

        var failed = attempts[0];
        Assert.Equal("chat deepseek-ai/DeepSeek-V3", failed.DisplayName);
        Assert.Equal("together_ai", failed.GetTagItem("gen_ai.provider.name"));
        Assert.Equal("deepseek-ai/DeepSeek-V3", failed.GetTagItem("gen_ai.request.model"));
        Assert.Equal("together_ai/deepseek-ai/DeepSeek-V3", failed.GetTagItem("onyx.deployment"));
        Assert.Equal("failed", failed.GetTagItem("onyx.outcome"));
        Assert.Equal("http_503", failed.GetTagItem("onyx.failover.reason"));
        Assert.Equal("http_503", failed.GetTagItem("error.type"));
        Assert.Equal(503, failed.GetTagItem("http.response.status_code"));
        Assert.Equal(ActivityStatusCode.Error, failed.Status);

        var served = attempts[2];
        Assert.Equal("chat mistral:7b-instruct", served.DisplayName);
        Assert.Equal("ollama", served.GetTagItem("gen_ai.provider.name"));
        Assert.Equal("success", served.GetTagItem("onyx.outcome"));
        Assert.Equal("mistral:7b-instruct", served.GetTagItem("gen_ai.response.model"));
        Assert.Equal(12, served.GetTagItem("gen_ai.usage.input_tokens"));
        Assert.Equal(FakeBehavior.DefaultTokens.Count, served.GetTagItem("gen_ai.usage.output_tokens"));

        // Each attempt's HTTP request is its child span, and its trace context reached the upstream.
        foreach (var (attempt, fake) in new[] { (attempts[1], (FakeLlmProvider)Gateway.Primary), (served, Gateway.Fallback) })
        {
            var http = trace.SingleOrDefault(s => s.Kind == ActivityKind.Client && s.ParentSpanId == attempt.SpanId)
                ?? throw new Xunit.Sdk.XunitException(string.Join("\n", trace.Select(s => $"{s.Source.Name} {s.Kind} {s.DisplayName} {s.SpanId} parent {s.ParentSpanId} {s.StartTimeUtc:O}")) + "\nattempt " + attempt.SpanId);
            Assert.Equal($"00-{traceId}-{http.SpanId}-01", fake.LastRequest!.Header("traceparent"));
        }
    }

    [Fact]
    public async Task SpansHoldNoPromptAnswerOrKey()
    {
        Gateway.Primary.Fault = FakeFault.Status(500);
        Gateway.Fallback.Fault = FakeFault.Status(500);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = GatewayHost.Json("""{"model":"manus-primary","messages":[{"role":"user","content":"secret-prompt-7731"}]}"""),
        };
        var traceId = await SendInTraceAsync(request, HttpStatusCode.ServiceUnavailable);
        Gateway.Primary.Fault = FakeFault.None;
        using var ok = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody(stream: true)) };
        var okTrace = await SendInTraceAsync(ok, HttpStatusCode.OK);

        var spans = (await _spans.WaitForCallAsync(traceId, TimeSpan.FromSeconds(10)))
            .Concat(await _spans.WaitForCallAsync(okTrace, TimeSpan.FromSeconds(10)))
            .ToList();
        var call = spans.First(s => s.Source.Name == "Onyx.Gateway" && s.Kind == ActivityKind.Internal);
        Assert.Equal(ActivityStatusCode.Error, call.Status);
        Assert.Equal("service_unavailable", call.GetTagItem("error.type"));
        var captured = string.Join("\n", spans.SelectMany(s =>
            new[] { s.DisplayName, s.StatusDescription ?? "" }
                .Concat(s.TagObjects.Select(t => $"{t.Key}={t.Value}"))
                .Concat(s.Events.SelectMany(e => e.Tags.Select(t => $"{e.Name}:{t.Key}={t.Value}")))));
        Assert.Contains("onyx.deployment=together_ai/deepseek-ai/DeepSeek-V3", captured, StringComparison.Ordinal);
        Assert.DoesNotContain("secret-prompt-7731", captured, StringComparison.Ordinal);
        Assert.DoesNotContain("Say hello", captured, StringComparison.Ordinal);
        Assert.DoesNotContain(Gateway.Primary.ExpectedText, captured, StringComparison.Ordinal);
        Assert.DoesNotContain(GatewayHost.TogetherKey, captured, StringComparison.Ordinal);
    }

    /// <summary>Sends within a trace of the test's own (the client's span carries it), reads the whole answer, returns the trace id.</summary>
    private async Task<ActivityTraceId> SendInTraceAsync(HttpRequestMessage request, HttpStatusCode expected)
    {
        // Sampled (the gateway's sampler follows its parent's decision).
        using var client = new Activity("test-client") { ActivityTraceFlags = ActivityTraceFlags.Recorded }.SetIdFormat(ActivityIdFormat.W3C).Start();
        using var response = await Client.SendAsync(request);
        await response.Content.ReadAsStringAsync();
        Assert.Equal(expected, response.StatusCode);
        return client.TraceId;
    }

    /// <summary>
    /// What the in-memory exporter writes into. Locked: the exporter appends from the threads that end spans (of every
    /// gateway in the process: activity listeners are global) while a test reads.
    /// </summary>
    private sealed class Spans : ICollection<Activity>
    {
        private readonly List<Activity> _items = [];
        private readonly Signal _ended = new();

        public int Count
        {
            get
            {
                lock (_items)
                {
                    return _items.Count;
                }
            }
        }

        public bool IsReadOnly => false;

        /// <summary>The spans of one trace once the gateway's call span and the request span above it have ended.</summary>
        public Task<List<Activity>> WaitForCallAsync(ActivityTraceId traceId, TimeSpan timeout) => WaitForAsync(traceId,
            trace => trace.FirstOrDefault(s => s.Source.Name == "Onyx.Gateway" && s.Kind == ActivityKind.Internal) is { } call
                && trace.Any(s => s.SpanId == call.ParentSpanId), timeout);

        /// <summary>The spans of one trace, once <paramref name="until"/> holds for them (checked as each span ends).</summary>
        private Task<List<Activity>> WaitForAsync(ActivityTraceId traceId, Func<List<Activity>, bool> until, TimeSpan timeout) =>
            _ended.WaitForAsync(() => Of(traceId), until, timeout, $"the spans of trace {traceId}",
                _ => $"{Count} spans: {string.Join(", ", this.Select(a => a.DisplayName + " " + a.Kind + " " + a.TraceId))}");

        private List<Activity> Of(ActivityTraceId traceId)
        {
            lock (_items)
            {
                return _items.Where(a => a.TraceId == traceId).ToList();
            }
        }

        public void Add(Activity item)
        {
            lock (_items)
            {
                _items.Add(item);
            }
            _ended.Pulse();
        }

        public void Clear()
        {
            lock (_items)
            {
                _items.Clear();
            }
        }

        public bool Contains(Activity item)
        {
            lock (_items)
            {
                return _items.Contains(item);
            }
        }

        public void CopyTo(Activity[] array, int arrayIndex)
        {
            lock (_items)
            {
                _items.CopyTo(array, arrayIndex);
            }
        }

        public bool Remove(Activity item)
        {
            lock (_items)
            {
                return _items.Remove(item);
            }
        }

        public IEnumerator<Activity> GetEnumerator()
        {
            lock (_items)
            {
                return _items.ToList().GetEnumerator();
            }
        }

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
