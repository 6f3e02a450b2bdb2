using System.Net;
using System.Text.Json.Nodes;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Routing;

/// <summary>
/// An answer that breaks mid-stream is continued on the next deployment, so the client gets one answer ending in
/// one [DONE] — or, when nobody can continue it, an error event and never a truncated answer that looks whole.
/// </summary>
public sealed class StreamResumeTests : GatewayTest
{
    protected override Dictionary<string, string?> Settings => new() { ["Onyx:Routing:StreamIdleTimeout"] = "00:00:00.500" };

    [Fact]
    public async Task ContinuesACutAnswerOnTheFallbackAsOneAnswer()
    {
        Gateway.Primary.Update(b => b with { Tokens = ["Once", " upon", " a", " time"], Fault = FakeFault.DropAfter(2) });
        Gateway.Fallback.Update(b => b with { Tokens = [" a", " time", " there", " was"] });

        using var response = await Client.PostAsync("/v1/chat/completions",
            GatewayHost.Json(GatewayHost.ChatBody(stream: true, extra: ""","stream_options":{"include_usage":true}""")));
        var body = await response.Content.ReadAsStringAsync();
        var events = Sse.Events(body);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Once upon a time there was", Sse.Content(events));
        Assert.Equal("[DONE]", events[^1]);
        Assert.Single(events, e => e == "[DONE]");
        Assert.DoesNotContain(events, e => e.Contains("\"error\"", StringComparison.Ordinal));
        // One role delta and one usage chunk, for the whole answer.
        Assert.Single(events, e => e.Contains("\"role\":\"assistant\"", StringComparison.Ordinal));
        var usage = Assert.Single(events, e => e != "[DONE]" && JsonNode.Parse(e) is JsonObject o && o["usage"] is JsonObject);
        Assert.True((int)JsonNode.Parse(usage)!["usage"]!["completion_tokens"]! >= Gateway.Fallback.Tokens.Count);

        // The fallback was asked to continue the partial answer, Ollama's way: a trailing assistant message.
        var messages = Gateway.Fallback.LastRequest!.Json!["messages"]!.AsArray();
        Assert.Equal("assistant", (string?)messages[^1]!["role"]);
        Assert.Equal("Once upon", (string?)messages[^1]!["content"]);

        // Where it broke is said in the stream (an SSE comment) and in the call log.
        Assert.Contains(": onyx-resumed from=together_ai/deepseek-ai/DeepSeek-V3 to=ollama/mistral:7b-instruct at_chars=9", body);
        var call = await Gateway.Logs.WaitForAsync(r => r.EventId == 3001, TimeSpan.FromSeconds(10));
        Assert.Equal(200, call["Status"]);
        Assert.Equal("ollama/mistral:7b-instruct", call["Deployment"]);
        Assert.Contains("at 9 chars", (string?)call["resumed"]);
    }

    [Fact]
    public async Task ContinuesAStalledAnswer()
    {
        Gateway.Primary.Update(b => b with { Tokens = ["Once", " upon", " a", " time"], Fault = FakeFault.StallAfter(2) });
        Gateway.Fallback.Update(b => b with { Tokens = [" a", " time"] });

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        var events = Sse.Events(await response.Content.ReadAsStringAsync());

        Assert.Equal("Once upon a time", Sse.Content(events));
        Assert.Equal("[DONE]", events[^1]);
        await Gateway.Primary.WaitForCancelledAsync(1, TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task AsksAnOpenAiCompatibleFallbackToContinueWithAnInstruction()
    {
        // Ollama cut, Together continues: the primary alias's chain is [together, ollama], so this uses the
        // fallback alias with the primary as its fallback.
        await using var gateway = await GatewayHost.StartAsync(new()
        {
            ["router_settings:fallbacks:0:manus-fallback:0"] = "manus-primary",
        });
        gateway.Fallback.Update(b => b with { Tokens = ["Once", " upon", " a", " time"], Fault = FakeFault.DropAfter(2) });
        gateway.Primary.Update(b => b with { Tokens = [" a", " time"] });
        using var client = gateway.CreateClient();

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(model: "manus-fallback", stream: true)));
        var events = Sse.Events(await response.Content.ReadAsStringAsync());

        Assert.Equal("Once upon a time", Sse.Content(events));
        var messages = gateway.Primary.LastRequest!.Json!["messages"]!.AsArray();
        Assert.Equal("assistant", (string?)messages[^2]!["role"]);
        Assert.Equal("Once upon", (string?)messages[^2]!["content"]);
        Assert.Equal("user", (string?)messages[^1]!["role"]);
        Assert.Contains("Continue it exactly where it stopped", (string?)messages[^1]!["content"]);
    }

    [Fact]
    public async Task SplicesARegeneratedAnswerWhenTheFallbackRefusesThePrefill()
    {
        Gateway.Primary.Update(b => b with { Tokens = ["Once", " upon", " a", " time"], Fault = FakeFault.DropAfter(2) });
        Gateway.Fallback.Update(b => b with { Tokens = ["Once", " upon", " a", " time", " there"], Continuation = FakeContinuation.RefusesPrefill });

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        var events = Sse.Events(await response.Content.ReadAsStringAsync());

        Assert.Equal("Once upon a time there", Sse.Content(events));
        Assert.Equal("[DONE]", events[^1]);
        // The refused continuation, then the answer anew.
        Assert.Equal(2, Gateway.Fallback.Calls);
        Assert.Equal("user", (string?)Gateway.Fallback.LastRequest!.Json!["messages"]!.AsArray()[^1]!["role"]);
    }

    [Fact]
    public async Task EndsWithACleanErrorWhenTheRegeneratedAnswerBeginsDifferently()
    {
        Gateway.Primary.Update(b => b with { Tokens = ["Once", " upon", " a", " time"], Fault = FakeFault.DropAfter(2) });
        Gateway.Fallback.Update(b => b with { Tokens = ["Long", " ago"], Continuation = FakeContinuation.RefusesPrefill });

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        var events = Sse.Events(await response.Content.ReadAsStringAsync());

        Assert.DoesNotContain("[DONE]", events);
        Assert.Equal("Once upon", Sse.Content(events[..^1]));
        var error = JsonNode.Parse(events[^1])!["error"]!;
        Assert.Equal("stream_interrupted", (string?)error["code"]);
        Assert.Contains("begins differently", (string?)error["message"]);
        Assert.DoesNotContain(events, e => e.Contains("\"finish_reason\":\"stop\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task DoesNotContinueAToolCall()
    {
        Gateway.Primary.Update(b => b with { Tokens = ["{\"city\":", "\"Par", "is\"}"], ToolCall = "get_weather", Fault = FakeFault.DropAfter(2) });

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        var events = Sse.Events(await response.Content.ReadAsStringAsync());

        Assert.DoesNotContain("[DONE]", events);
        var error = JsonNode.Parse(events[^1])!["error"]!;
        Assert.Contains("tool call", (string?)error["message"]);
        Assert.Equal(0, Gateway.Fallback.Calls);
    }

    [Fact]
    public async Task EndsAnAnswerOnceItsFinishAndUsageArriveWithoutWaitingForTheSocket()
    {
        // The primary sends its finish reason and usage, then holds the connection open without [DONE].
        Gateway.Primary.Fault = FakeFault.HangAfterFinish;

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        var events = Sse.Events(await response.Content.ReadAsStringAsync());

        Assert.Equal(Gateway.Primary.ExpectedText, Sse.Content(events));
        Assert.Equal("[DONE]", events[^1]);
        await Gateway.Primary.WaitForCancelledAsync(1, TimeSpan.FromSeconds(10));
        Assert.Equal(0, Gateway.Fallback.Calls);
        var call = await Gateway.Logs.WaitForAsync(r => r.EventId == 3001, TimeSpan.FromSeconds(10));
        Assert.Equal(200, call["Status"]);
    }
}
