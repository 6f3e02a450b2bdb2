using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;
using Xunit.Abstractions;

namespace Onyx.Gateway.Tests.AppHost;

/// <summary>
/// The fault matrix (issue 6), through the AppHost: each upstream fault, the client's outcome, its time to first
/// token and total time, and the calls that reached each upstream. The gateway runs with its defaults: 2 s for a
/// first token, 5 s of silence for a stall. Each case prints its row (docs/fault-matrix.md holds a run of them).
/// </summary>
[Collection(AppHostCollection.Name)]
public sealed class FaultMatrixTests(AppHostFixture fixture, ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan FirstTokenLimit = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan StallLimit = TimeSpan.FromSeconds(5);
    private static readonly IReadOnlyList<string> PrimaryTokens = ["Once", " upon", " a", " time"];

    private readonly HttpClient _client = fixture.CreateGatewayClient();

    public void Dispose()
    {
        _client.Dispose();
        fixture.ResetFakes();
    }

    public static TheoryData<string> Cases() =>
    [
        "429 with Retry-After", "500", "503", "502 with an HTML body", "connection refused", "unresolvable host",
        "hang before headers", "headers then no body", "slow first token", "malformed chunk", "error in the first event",
        "stream cut mid-answer", "stream stalled mid-answer", "fallback rejects the continuation",
        "Ollama {\"error\"} line", "primary and fallback both down", "client disconnects",
    ];

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task EachFaultEndsInARescuedOrCleanOutcome(string fault)
    {
        var primary = fixture.Primary;
        var fallback = fixture.Fallback;
        primary.Update(b => b with { Tokens = PrimaryTokens });
        // A model that continues a prefilled answer, and whose own answer to the question is a little longer.
        fallback.Update(b => b with { Tokens = [.. PrimaryTokens, " there", " was"], Continuation = FakeContinuation.Honours });
        var alias = "matrix";
        switch (fault)
        {
            case "429 with Retry-After":
                alias = "matrix-429";
                primary.Fault = FakeFault.Status(429, headers: new Dictionary<string, string> { ["Retry-After"] = "30" });
                break;
            case "500":
                primary.Fault = FakeFault.Status(500);
                break;
            case "503":
                primary.Fault = FakeFault.Status(503);
                break;
            case "502 with an HTML body":
                primary.Fault = FakeFault.Status(502, "<html><body><h1>502 Bad Gateway</h1></body></html>", new Dictionary<string, string> { ["Content-Type"] = "text/html" });
                break;
            case "connection refused":
                alias = "matrix-refused";
                break;
            case "unresolvable host":
                alias = "matrix-unresolvable";
                break;
            case "hang before headers":
                primary.Fault = FakeFault.HangBeforeHeaders;
                break;
            case "headers then no body":
                primary.Fault = FakeFault.HeadersThenHang;
                break;
            case "slow first token":
                primary.Fault = FakeFault.SlowFirstToken(TimeSpan.FromSeconds(10));
                break;
            case "malformed chunk":
                primary.Fault = FakeFault.MalformedChunk;
                break;
            case "error in the first event":
                primary.Fault = FakeFault.ErrorFirstEvent;
                break;
            case "stream cut mid-answer":
                primary.Fault = FakeFault.DropAfter(2);
                break;
            case "stream stalled mid-answer":
                primary.Fault = FakeFault.StallAfter(2);
                break;
            case "fallback rejects the continuation":
                primary.Fault = FakeFault.DropAfter(2);
                fallback.Update(b => b with { Tokens = ["Long", " ago"], Continuation = FakeContinuation.RefusesPrefill });
                break;
            case "Ollama {\"error\"} line":
                alias = "manus-fallback";
                fallback.Fault = FakeFault.ErrorFirstEvent;
                break;
            case "primary and fallback both down":
                primary.Fault = FakeFault.Status(500);
                fallback.Fault = FakeFault.Status(500);
                break;
            case "client disconnects":
                primary.TokenDelay = TimeSpan.FromSeconds(30);
                break;
        }

        // A client that closes its connection when it lets go of a response, rather than draining it for reuse (the
        // .NET default holds it up to 2 s), so "client disconnects" measures the gateway, not the client.
        using var leaving = new HttpClient(new SocketsHttpHandler { ResponseDrainTimeout = TimeSpan.Zero, MaxResponseDrainSize = 0 })
        {
            BaseAddress = _client.BaseAddress,
            DefaultRequestHeaders = { Authorization = _client.DefaultRequestHeaders.Authorization },
        };
        var clock = Stopwatch.StartNew();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody(alias, stream: true)) };
        using var response = await (fault == "client disconnects" ? leaving : _client).SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        TimeSpan? firstToken = null;
        var body = new System.Text.StringBuilder();
        if (fault == "client disconnects")
        {
            while (await reader.ReadLineAsync() is { } line && !line.Contains("\"content\":\"Once\"", StringComparison.Ordinal))
            {
            }
            firstToken = clock.Elapsed;
            reader.Dispose();
            response.Dispose();
            var left = clock.Elapsed;
            await primary.WaitForCancelledAsync(1, TimeSpan.FromSeconds(5));
            Row(fault, $"the upstream request is cancelled ({(clock.Elapsed - left).TotalMilliseconds:0} ms after the client left)", firstToken, clock.Elapsed);
            Assert.Equal(1, primary.Calls);
            Assert.Equal(0, fallback.Calls);
            return;
        }
        while (await reader.ReadLineAsync() is { } line)
        {
            if (firstToken is null && line.Contains("\"content\":\"", StringComparison.Ordinal) && !line.Contains("\"content\":\"\"", StringComparison.Ordinal))
            {
                firstToken = clock.Elapsed;
            }
            body.Append(line).Append('\n');
        }
        var total = clock.Elapsed;
        var text = body.ToString();

        switch (fault)
        {
            case "429 with Retry-After" or "500" or "503" or "502 with an HTML body" or "malformed chunk" or "error in the first event":
                AssertServedByFallback(response, text, fallback.Tokens);
                // A 5xx, a malformed stream or an in-band error is asked once more; a long Retry-After is not.
                Assert.Equal(fault == "429 with Retry-After" ? 1 : 2, primary.Calls);
                // Failed over on the failure itself, not after waiting out the first-token limit.
                Assert.True(firstToken < FirstTokenLimit, $"first token after {firstToken}");
                if (fault == "429 with Retry-After")
                {
                    // The deployment rests for the 30 s it was asked to: the next request does not call it.
                    using var next = await _client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(alias, stream: true)));
                    Assert.Equal("true", next.Headers.GetValues("x-onyx-fallback").Single());
                    Assert.Equal(1, primary.Calls);
                }
                Row(fault, "fallback serves the answer (200)", firstToken, total);
                break;
            case "connection refused" or "unresolvable host":
                AssertServedByFallback(response, text, fallback.Tokens);
                Assert.Equal(0, primary.Calls);
                Assert.True(firstToken < FirstTokenLimit, $"first token after {firstToken}");
                Row(fault, "fallback serves the answer (200)", firstToken, total);
                break;
            case "hang before headers" or "headers then no body" or "slow first token":
                AssertServedByFallback(response, text, fallback.Tokens);
                Assert.Equal(1, primary.Calls);
                Assert.InRange(firstToken!.Value, FirstTokenLimit, TimeSpan.FromSeconds(3));
                await primary.WaitForCancelledAsync(1, TimeSpan.FromSeconds(5));
                Row(fault, "fallback serves the answer after the 2 s first-token limit (200)", firstToken, total);
                break;
            case "stream cut mid-answer" or "stream stalled mid-answer":
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                var events = Sse.Events(text);
                Assert.Equal("Once upon a time there was", Sse.Content(events));
                Assert.Single(events, e => e == "[DONE]");
                Assert.Contains(": onyx-resumed from=openai/matrix-model to=ollama/mistral:7b-instruct at_chars=9", text);
                Assert.Equal(1, primary.Calls);
                Assert.Equal(1, fallback.Calls);
                Assert.True(firstToken < FirstTokenLimit, $"first token after {firstToken}");
                if (fault == "stream stalled mid-answer")
                {
                    // The stall limit, then the continuation (which has its own first-token limit).
                    Assert.InRange(total, StallLimit, StallLimit + FirstTokenLimit + TimeSpan.FromSeconds(1));
                }
                Row(fault, "answer resumed on the fallback: one answer, one [DONE] (200)", firstToken, total);
                break;
            }
            case "fallback rejects the continuation":
            {
                var events = Sse.Events(text);
                Assert.DoesNotContain("[DONE]", events);
                Assert.Equal("Once upon", Sse.Content(events[..^1]));
                Assert.Equal("stream_interrupted", (string?)JsonNode.Parse(events[^1])!["error"]!["code"]);
                Assert.Equal(2, fallback.Calls);
                Row(fault, "error event after the partial answer, no [DONE] (clean)", firstToken, total);
                break;
            }
            case "Ollama {\"error\"} line" or "primary and fallback both down":
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
                var error = JsonNode.Parse(text)!["error"]!;
                Assert.Equal("all_deployments_failed", (string?)error["code"]);
                Assert.NotNull(response.Headers.RetryAfter);
                // At once: no first-token limit waited out.
                Assert.True(total < FirstTokenLimit, $"503 after {total}");
                // Each failure asked once more.
                Assert.Equal(2, fallback.Calls);
                Row(fault, "503 all_deployments_failed with Retry-After, at once", firstToken, total);
                break;
            }
            default:
                throw new InvalidOperationException("No expectation for " + fault);
        }
    }

    private static void AssertServedByFallback(HttpResponseMessage response, string body, IReadOnlyList<string> fallbackTokens)
    {
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("true", response.Headers.GetValues("x-onyx-fallback").Single());
        var events = Sse.Events(body);
        Assert.Equal(string.Concat(fallbackTokens), Sse.Content(events));
        Assert.Equal("[DONE]", events[^1]);
    }

    private void Row(string fault, string outcome, TimeSpan? firstToken, TimeSpan total) =>
        output.WriteLine($"| {fault} | {outcome} | {(firstToken is { } t ? $"{t.TotalMilliseconds:0} ms" : "–")} | {total.TotalMilliseconds:0} ms | " +
            $"{fixture.Primary.Calls} | {fixture.Fallback.Calls} |");
}
