using System.Net;
using System.Text.Json.Nodes;
using Onyx.Gateway.Model;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Routing;

/// <summary>
/// An answer that breaks mid-stream is continued on the next deployment with a seam the client cannot see — one
/// answer, one role, one identity, one [DONE] — or, when nobody can continue it faithfully, ends in an error event and
/// never a truncated or spliced answer that looks whole.
/// </summary>
public sealed class StreamResumeTests : GatewayTest
{
    private static readonly IReadOnlyList<string> Story = ["Once", " upon", " a", " time", " there", " was"];

    protected override Dictionary<string, string?> Settings => new() { ["Onyx:Routing:StreamIdleTimeout"] = "00:00:00.500" };

    [Fact]
    public async Task ContinuesACutAnswerOnAFallbackThatHonoursThePrefill()
    {
        Gateway.Primary.Update(b => b with { Tokens = Story, Fault = FakeFault.DropAfter(2) });
        Gateway.Fallback.Update(b => b with { Tokens = Story, Continuation = FakeContinuation.Honours });

        using var response = await Client.PostAsync("/v1/chat/completions",
            GatewayHost.Json(GatewayHost.ChatBody(stream: true, extra: ""","stream_options":{"include_usage":true}""")));
        var body = await response.Content.ReadAsStringAsync();
        var events = Sse.Events(body);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(StreamOutcome.Whole, AnswerIntegrity.Check(body, string.Concat(Story)));
        // One usage chunk, for the whole answer.
        var usage = Assert.Single(events, e => e != "[DONE]" && JsonNode.Parse(e) is JsonObject o && o["usage"] is JsonObject);
        Assert.True((int)JsonNode.Parse(usage)!["usage"]!["completion_tokens"]! >= Story.Count - 2);

        // The fallback was given the answer so far minus its last word, as Ollama continues it: a trailing assistant
        // message. It had to write " upon" again before anything of it reached the client.
        var messages = Gateway.Fallback.LastRequest!.Json!["messages"]!.AsArray();
        Assert.Equal("assistant", (string?)messages[^1]!["role"]);
        Assert.Equal("Once", (string?)messages[^1]!["content"]);

        // Where and how it was resumed: on the chunk that finishes the answer, in an SSE comment, and in the call log.
        var finish = events.Select(e => e == "[DONE]" ? null : JsonNode.Parse(e))
            .Single(c => c?["choices"] is JsonArray { Count: > 0 } choices && choices[0]!["finish_reason"] is JsonValue)!;
        var resumed = finish["x_onyx"]!["resumed"]![0]!;
        Assert.Equal("together_ai/deepseek-ai/DeepSeek-V3", (string?)resumed["from"]);
        Assert.Equal("ollama/mistral:7b-instruct", (string?)resumed["to"]);
        Assert.Equal(9, (int?)resumed["at_chars"]);
        Assert.Equal("prefill", (string?)resumed["how"]);
        Assert.Equal("mistral:7b-instruct", (string?)finish["model"]);
        Assert.Contains(": onyx-resumed from=together_ai/deepseek-ai/DeepSeek-V3 to=ollama/mistral:7b-instruct at_chars=9", body);
        var call = await Gateway.Logs.WaitForAsync(r => r.EventId == 3001, TimeSpan.FromSeconds(10));
        Assert.Equal(200, call["Status"]);
        Assert.Equal("ollama/mistral:7b-instruct", call["Deployment"]);
        Assert.Contains("at 9 chars", (string?)call["resumed"]);
    }

    [Fact]
    public async Task ReplaysSilentlyAFallbackThatStartsTheAnswerOver()
    {
        Gateway.Primary.Update(b => b with { Tokens = Story, Fault = FakeFault.StallAfter(3) });
        Gateway.Fallback.Update(b => b with { Tokens = Story, Continuation = FakeContinuation.Restarts });

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(StreamOutcome.Whole, AnswerIntegrity.Check(body, string.Concat(Story)));
        Assert.Contains("how=replayed", body);
        await Gateway.Primary.WaitForCancelledAsync(1, TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task AsksAFallbackThatRefusesThePrefillAgainByReplay()
    {
        Gateway.Primary.Update(b => b with { Tokens = Story, Fault = FakeFault.DropAfter(2) });
        Gateway.Fallback.Update(b => b with { Tokens = Story, Continuation = FakeContinuation.RefusesPrefill });

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));

        Assert.Equal(StreamOutcome.Whole, AnswerIntegrity.Check(await response.Content.ReadAsStringAsync(), string.Concat(Story)));
        // The refused prefill, then the question again — and the refusal never reached the client.
        Assert.Equal(2, Gateway.Fallback.Calls);
        Assert.Equal("assistant", (string?)Gateway.Fallback.Requests[0].Json!["messages"]!.AsArray()[^1]!["role"]);
        Assert.Equal("user", (string?)Gateway.Fallback.LastRequest!.Json!["messages"]!.AsArray()[^1]!["role"]);
    }

    [Fact]
    public async Task EndsWithACleanErrorWhenTheFallbackSaysSomethingElse()
    {
        Gateway.Primary.Update(b => b with { Tokens = Story, Fault = FakeFault.DropAfter(2) });
        Gateway.Fallback.Update(b => b with { Tokens = ["Long", " ago"], Continuation = FakeContinuation.RefusesPrefill });

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        var events = Sse.Events(await response.Content.ReadAsStringAsync());

        Assert.Equal(StreamOutcome.CleanError, AnswerIntegrity.Check(string.Join("", events.Select(e => $"data: {e}\n\n")), string.Concat(Story)));
        Assert.Equal("Once upon", Sse.Content(events[..^1]));
        Assert.Contains("begins differently", (string?)JsonNode.Parse(events[^1])!["error"]!["message"]);
    }

    [Fact]
    public async Task GivesTheContinuationWhatIsLeftOfTheClientsMaxTokens()
    {
        await using var gateway = await OpenAiFallbackGateway.StartAsync(continuation: "prefill");
        IReadOnlyList<string> words = ["One", .. Enumerable.Range(2, 40).Select(i => $" word{i}")];
        gateway.Primary.Update(b => b with { Tokens = words, Fault = FakeFault.DropAfter(30) });
        gateway.Fallback.Update(b => b with { Tokens = words, Continuation = FakeContinuation.Honours });
        using var client = gateway.Gateway.CreateClient();

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true, extra: ""","max_tokens":200""")));

        Assert.Equal(StreamOutcome.Whole, AnswerIntegrity.Check(await response.Content.ReadAsStringAsync(), string.Concat(words)));
        // 29 words of about two tokens each were already produced: the continuation may not write 200 more.
        var limit = (int)gateway.Fallback.LastRequest!.Json!["max_tokens"]!;
        Assert.InRange(limit, 100, 190);
    }

    [Fact]
    public async Task ContinuesAJsonAnswerOnlyByReplay()
    {
        Gateway.Primary.Update(b => b with { Tokens = ["{\"a\":", " 1,", " \"b\":", " 2}"], Fault = FakeFault.DropAfter(2) });
        Gateway.Fallback.Update(b => b with { Tokens = ["{\"a\":", " 1,", " \"b\":", " 2}"], Continuation = FakeContinuation.Honours });

        using var response = await Client.PostAsync("/v1/chat/completions",
            GatewayHost.Json(GatewayHost.ChatBody(stream: true, extra: ""","response_format":{"type":"json_object"}""")));

        Assert.Equal(StreamOutcome.Whole, AnswerIntegrity.Check(await response.Content.ReadAsStringAsync(), "{\"a\": 1, \"b\": 2}"));
        // Not a prefill (a model held to JSON would start a new value): the question again, proven character by character.
        var sent = Gateway.Fallback.LastRequest!.Json!;
        Assert.Equal("user", (string?)sent["messages"]!.AsArray()[^1]!["role"]);
        Assert.Equal("json", (string?)sent["format"]);
    }

    [Fact]
    public async Task DoesNotContinueAnAnswerWhoseLogprobsTheClientWants()
    {
        Gateway.Primary.Update(b => b with { Tokens = Story, Fault = FakeFault.DropAfter(2) });

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true, extra: ""","logprobs":true""")));
        var events = Sse.Events(await response.Content.ReadAsStringAsync());

        Assert.DoesNotContain("[DONE]", events);
        Assert.Contains("logprobs", (string?)JsonNode.Parse(events[^1])!["error"]!["message"]);
        Assert.Equal(0, Gateway.Fallback.Calls);
    }

    [Fact]
    public async Task DoesNotContinueAnAnswerCutWhileTheModelWasReasoning()
    {
        Gateway.Primary.Update(b => b with { Reasoning = ["Let me think.", " The user wants"], Tokens = Story, Fault = FakeFault.DropAfter(0) });

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(StreamOutcome.CleanError, AnswerIntegrity.Check(body, string.Concat(Story)));
        Assert.Contains("reasoning", (string?)JsonNode.Parse(Sse.Events(body)[^1])!["error"]!["message"]);
        Assert.Equal(0, Gateway.Fallback.Calls);
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

    [Fact]
    public async Task ReadsAProvidersUsageWrittenAsFloats()
    {
        // Some OpenAI-compatible servers write every number as a float: "prompt_tokens": 12.0.
        Gateway.Primary.Update(b => b with { FractionalUsage = true });

        using var response = await Client.PostAsync("/v1/chat/completions",
            GatewayHost.Json(GatewayHost.ChatBody(stream: true, extra: ""","stream_options":{"include_usage":true}""")));

        Assert.Equal(StreamOutcome.Whole, AnswerIntegrity.Check(await response.Content.ReadAsStringAsync(), Gateway.Primary.ExpectedText));
        var call = await Gateway.Logs.WaitForAsync(r => r.EventId == 3001, TimeSpan.FromSeconds(10));
        Assert.Equal(200, call["Status"]);
        Assert.Equal(12, call["promptTokens"]);
        Assert.Equal(false, call["tokensEstimated"]);
        Assert.Equal(0, Gateway.Fallback.Calls);
    }
}
