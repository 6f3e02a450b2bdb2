using System.Net;
using System.Text.Json.Nodes;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Providers;

/// <summary>
/// Requests an agent sends — tools, a JSON schema, an image link — through the real gateway to the fake Ollama,
/// which answers a tool call as Ollama does (the call whole in one line, <c>done_reason: "stop"</c>) and answers
/// plain text when it was offered no tools. What the client gets must still read as a tool call.
/// </summary>
public sealed class OllamaThroughTheGatewayTests : GatewayTest
{
    private const string Tools = """
        "tools":[{"type":"function","function":{"name":"get_weather","description":"The weather in a city",
          "parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city"]}}}]
        """;

    /// <summary>What the fake model calls get_weather with, in the pieces the model writes it.</summary>
    private static readonly string[] ArgumentTokens = ["{\"city\":", "\"Paris\",", "\"days\":3}"];

    private static readonly JsonNode Arguments = JsonNode.Parse("""{"city":"Paris","days":3}""")!;

    [Fact]
    public async Task StreamsOllamasToolCallToTheClientAsAnOpenAiToolCall()
    {
        Gateway.Fallback.Update(b => b with { ToolCall = "get_weather", Tokens = ArgumentTokens });

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(
            $$"""{"model":"manus-fallback","stream":true,"messages":[{"role":"user","content":"Weather in Paris?"}],{{Tools}}}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        AssertOllamaGotTheTools();
        var events = Sse.Events(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        var choices = events[..^1].Select(e => JsonNode.Parse(e)!["choices"]!.AsArray()).Where(c => c.Count > 0).Select(c => c[0]!).ToList();
        var call = Assert.Single(choices, c => c["delta"]?["tool_calls"] is not null)!["delta"]!["tool_calls"]!.AsArray().Single()!;
        Assert.Equal(0, (int)call["index"]!);
        AssertIsTheCall(call);
        Assert.Equal("tool_calls", (string?)choices[^1]["finish_reason"]);
        Assert.Equal("", Sse.Content(events));
    }

    [Fact]
    public async Task AnswersOllamasToolCallWithoutStreamingWhenThePrimaryFails()
    {
        Gateway.Primary.Fault = FakeFault.Status(500);
        Gateway.Fallback.Update(b => b with { ToolCall = "get_weather", Tokens = ArgumentTokens });

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(
            $$"""{"model":"manus-primary","messages":[{"role":"user","content":"Weather in Paris?"}],{{Tools}},"tool_choice":"auto"}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("ollama/mistral:7b-instruct", OpenAiResponses.Header(response, "x-onyx-deployment"));
        AssertOllamaGotTheTools();
        var choice = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["choices"]![0]!;
        Assert.Equal("tool_calls", (string?)choice["finish_reason"]);
        var message = choice["message"]!.AsObject();
        Assert.True(message.ContainsKey("content"));
        Assert.Null(message["content"]);
        AssertIsTheCall(message["tool_calls"]!.AsArray().Single()!);
        // A 500 is retried once on the primary before the fallback.
        Assert.Equal(2, Gateway.Primary.Calls);
    }

    [Fact]
    public async Task OffersOllamaNoToolsWhenToolChoiceIsNone()
    {
        // The fake model would call get_weather if it were offered it.
        Gateway.Fallback.Update(b => b with { ToolCall = "get_weather", Tokens = ["It is", " sunny."] });

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(
            $$"""{"model":"manus-fallback","messages":[{"role":"user","content":"Weather in Paris?"}],{{Tools}},"tool_choice":"none"}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Null(Gateway.Fallback.LastRequest!.Json!["tools"]);
        var choice = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["choices"]![0]!;
        Assert.Equal("It is sunny.", (string?)choice["message"]!["content"]);
        Assert.Equal("stop", (string?)choice["finish_reason"]);
    }

    [Fact]
    public async Task SendsAJsonSchemaToOllamaAsItsFormat()
    {
        const string schema = """{"type":"object","properties":{"name":{"type":"string"}},"required":["name"],"additionalProperties":false}""";

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json("""
            {"model":"manus-fallback","stream":true,"messages":[{"role":"user","content":"Name a city."}],
             "response_format":{"type":"json_schema","json_schema":{"name":"city","strict":true,"schema":
            """ + schema + "}}}"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(schema), Gateway.Fallback.LastRequest!.Json!["format"]));
    }

    [Fact]
    public async Task SkipsOllamaForAnImageLinkAndTheErrorSaysWhy()
    {
        Gateway.Primary.Fault = FakeFault.Status(500);

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json("""
            {"model":"manus-primary","messages":[{"role":"user","content":[
              {"type":"text","text":"What is in this picture?"},
              {"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]}
            """));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var message = (string?)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!["message"];
        Assert.Contains("ollama/mistral:7b-instruct (cannot serve the request: messages[0].content[1].image_url is a link, not a data: URL", message, StringComparison.Ordinal);
        Assert.Equal(2, Gateway.Primary.Calls);
        Assert.Equal(0, Gateway.Fallback.Calls);
    }

    private void AssertOllamaGotTheTools()
    {
        var sent = Gateway.Fallback.LastRequest!.Json!;
        var expected = JsonNode.Parse("{" + Tools + "}")!["tools"];
        Assert.True(JsonNode.DeepEquals(expected, sent["tools"]), $"Ollama got tools {sent["tools"]?.ToJsonString() ?? "(none)"}");
    }

    /// <summary>OpenAI's shape of the fake's call: an id, a function type, the name, and the arguments as a string of the same object.</summary>
    private static void AssertIsTheCall(JsonNode call)
    {
        Assert.StartsWith("call_", (string?)call["id"], StringComparison.Ordinal);
        Assert.Equal("function", (string?)call["type"]);
        Assert.Equal("get_weather", (string?)call["function"]!["name"]);
        Assert.True(JsonNode.DeepEquals(Arguments, JsonNode.Parse((string)call["function"]!["arguments"]!)));
    }
}
