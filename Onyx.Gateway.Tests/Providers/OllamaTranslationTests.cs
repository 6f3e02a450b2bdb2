using System.Net;
using System.Text.Json.Nodes;
using System.Text.Json;
using System.Text;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;
using Onyx.Gateway.Routing;

namespace Onyx.Gateway.Tests.Providers;

/// <summary>
/// The Ollama adapter's two translations, one piece at a time: an OpenAI request into an <c>/api/chat</c> body
/// (<see cref="OllamaProvider.BuildBody"/>), what it declines to translate (<see cref="OllamaProvider.CannotServe"/>),
/// and Ollama's answers (canned NDJSON, as Ollama writes it) back into OpenAI's.
/// </summary>
public sealed class OllamaTranslationTests
{
    private const string Tools = """
        "tools":[{"type":"function","function":{"name":"get_weather","description":"The weather in a city",
          "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]
        """;

    /// <summary>A conversation that called two tools and got both results back.</summary>
    private const string ToolHistory = """
        "messages":[
          {"role":"user","content":"Weather and time in Paris?"},
          {"role":"assistant","content":null,"tool_calls":[
            {"id":"call_w","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"units\":{\"temp\":\"C\"}}"}},
            {"id":"call_t","type":"function","function":{"name":"get_time","arguments":"{\"tz\":\"Europe/Paris\"}"}}]},
          {"role":"tool","tool_call_id":"call_t","content":"14:05"},
          {"role":"tool","tool_call_id":"call_w","content":"18 C, cloudy"}]
        """;

    private static readonly Deployment Ollama = new()
    {
        Id = "ollama/qwen3:8b",
        Alias = "local",
        Provider = ProviderCatalog.ByPrefix["ollama"],
        ProviderModel = "qwen3:8b",
        ApiBase = new Uri("http://ollama:11434"),
    };

    private static readonly OllamaProvider Provider = new(new UpstreamClients(Options.Create(new OnyxOptions())), TimeProvider.System);

    [Fact]
    public void SendsTheRequestsToolsToOllamaAsTheyAre()
    {
        var request = Request($$"""{"model":"local","messages":[{"role":"user","content":"Weather in Paris?"}],{{Tools}},"tool_choice":"auto"}""");

        var body = Body(request);

        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(request.Body.GetProperty("tools").GetRawText()), body["tools"]));
        Assert.Null(body["tool_choice"]);
    }

    [Fact]
    public void OffersNoToolsWhenToolChoiceIsNone()
    {
        var body = Body(Request($$"""{"model":"local","messages":[{"role":"user","content":"Just talk"}],{{Tools}},"tool_choice":"none"}"""));

        Assert.Null(body["tools"]);
    }

    [Fact]
    public void SendsAnAssistantsToolCallsWithTheirArgumentsAsObjects()
    {
        var body = Body(Request($$"""{"model":"local",{{ToolHistory}}}"""));

        var assistant = body["messages"]![1]!;
        Assert.Equal("assistant", (string?)assistant["role"]);
        Assert.Equal("", (string?)assistant["content"]);
        var calls = assistant["tool_calls"]!.AsArray();
        Assert.Equal(2, calls.Count);
        Assert.True(JsonNode.DeepEquals(
            JsonNode.Parse("""{"function":{"name":"get_weather","arguments":{"city":"Paris","units":{"temp":"C"}}}}"""), calls[0]));
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"function":{"name":"get_time","arguments":{"tz":"Europe/Paris"}}}"""), calls[1]));
    }

    [Fact]
    public void NamesTheToolEachToolResultComesFrom()
    {
        var body = Body(Request($$"""{"model":"local",{{ToolHistory}}}"""));

        var results = body["messages"]!.AsArray().Skip(2).ToList();
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"role":"tool","content":"14:05","tool_name":"get_time"}"""), results[0]));
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"role":"tool","content":"18 C, cloudy","tool_name":"get_weather"}"""), results[1]));
    }

    [Fact]
    public void SendsAJsonSchemaAsOllamasFormat()
    {
        const string schema = """{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}""";
        var body = Body(Request("""
            {"model":"local","messages":[{"role":"user","content":"Who?"}],
             "response_format":{"type":"json_schema","json_schema":{"name":"person","strict":true,"schema":
            """ + schema + "}}}"));

        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(schema), body["format"]));
    }

    [Theory]
    [InlineData("""{"type":"json_object"}""", "\"json\"")]
    [InlineData("""{"type":"text"}""", null)]
    public void SendsJsonObjectAsFormatJsonAndTextAsNoFormat(string responseFormat, string? format)
    {
        var body = Body(Request($$"""{"model":"local","messages":[{"role":"user","content":"Hi"}],"response_format":{{responseFormat}}}"""));

        Assert.Equal(format, body["format"]?.ToJsonString());
    }

    [Fact]
    public void SetsTheContextWindowWhenTheDeploymentHasOne()
    {
        var request = Request("""{"model":"local","messages":[{"role":"user","content":"Hi"}]}""");

        Assert.Equal(40_960, (int?)Body(request, Deployment(numCtx: 40_960))["options"]!["num_ctx"]);
        Assert.Null(Body(request)["options"]!["num_ctx"]);
    }

    [Fact]
    public void SendsADataUrlImageAsBareBase64BesideTheText()
    {
        var body = Body(Request("""
            {"model":"local","messages":[{"role":"user","content":[
              {"type":"text","text":"What is "},
              {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo+/=","detail":"low"}},
              {"type":"text","text":"this?"}]}]}
            """));

        var message = body["messages"]![0]!;
        Assert.Equal("What is this?", (string?)message["content"]);
        Assert.Equal(new[] { "iVBORw0KGgo+/=" }, message["images"]!.AsArray().Select(image => (string?)image));
    }

    [Fact]
    public void KeepsTheSamplingOptionsStopListAndDeveloperRole()
    {
        var body = Body(Request("""
            {"model":"local","messages":[{"role":"developer","content":"Be brief."},{"role":"user","content":"Hi"}],
             "max_completion_tokens":64,"temperature":0.2,"top_p":0.9,"seed":7,"presence_penalty":0.5,"frequency_penalty":-0.5,"stop":"END"}
            """), Deployment(numCtx: null, defaultMaxTokens: 4096));

        Assert.Equal("system", (string?)body["messages"]![0]!["role"]);
        Assert.True(JsonNode.DeepEquals(
            JsonNode.Parse("""{"num_predict":64,"temperature":0.2,"top_p":0.9,"seed":7,"presence_penalty":0.5,"frequency_penalty":-0.5,"stop":["END"]}"""),
            body["options"]));
        Assert.Equal("qwen3:8b", (string?)body["model"]);
        Assert.True((bool)body["stream"]!);
    }

    public static TheoryData<string, string> Untranslatable() => new()
    {
        {
            """{"model":"local","messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]}""",
            "messages[0].content[1].image_url is a link, not a data: URL"
        },
        {
            """{"model":"local","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/svg+xml,%3Csvg%3E%3C/svg%3E"}}]}]}""",
            "messages[0].content[0].image_url is a data: URL that is not base64"
        },
        { $$"""{"model":"local","messages":[{"role":"user","content":"Weather?"}],{{Tools}},"tool_choice":"required"}""", "tool_choice 'required'" },
        {
            $$"""{"model":"local","messages":[{"role":"user","content":"Weather?"}],{{Tools}},"tool_choice":{"type":"function","function":{"name":"get_weather"}""" + "}}",
            "tool_choice names a function"
        },
        { $$"""{"model":"local","messages":[{"role":"user","content":"Weather?"}],{{Tools}},"parallel_tool_calls":false}""", "parallel_tool_calls is false" },
        { """{"model":"local","messages":[{"role":"user","content":"Hi"}],"logprobs":true}""", "logprobs" },
        { """{"model":"local","messages":[{"role":"user","content":"Hi"}],"top_logprobs":3}""", "logprobs" },
        { """{"model":"local","messages":[{"role":"user","content":"Hi"}],"logit_bias":{"1734":-100}}""", "logit_bias" },
        { """{"model":"local","messages":[{"role":"user","content":"Hi"}],"reasoning_effort":"low"}""", "reasoning_effort" },
        { """{"model":"local","messages":[{"role":"user","content":"Hi"}],"functions":[{"name":"f","parameters":{}}]}""", "functions/function_call" },
        { """{"model":"local","messages":[{"role":"user","content":"Hi"}],"function_call":"auto"}""", "functions/function_call" },
        {
            """{"model":"local","messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"","function_call":{"name":"f","arguments":"{}"}},{"role":"function","name":"f","content":"1"}]}""",
            "messages[1] uses function_call"
        },
        {
            """{"model":"local","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"UklGR","format":"wav"}}]}]}""",
            "messages[0].content[0] is an input_audio part"
        },
        {
            """{"model":"local","messages":[{"role":"user","content":[{"type":"text","text":"Sum it up"},{"type":"file","file":{"file_id":"file-1"}}]}]}""",
            "messages[0].content[1] is a file part"
        },
        {
            """{"model":"local","messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"[1,2]"}}]},{"role":"tool","tool_call_id":"call_1","content":"3"}]}""",
            "messages[1].tool_calls[0].function.arguments is not a JSON object"
        },
        {
            """{"model":"local","messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1"}}]},{"role":"tool","tool_call_id":"call_1","content":"3"}]}""",
            "messages[1].tool_calls[0].function.arguments is not a JSON object"
        },
    };

    [Theory]
    [MemberData(nameof(Untranslatable))]
    public void DeclinesWhatOllamaCannotSayAndNamesTheField(string json, string reason)
    {
        var cannot = Provider.CannotServe(Ollama, Request(json));

        Assert.NotNull(cannot);
        Assert.Contains(reason, cannot, StringComparison.Ordinal);
    }

    public static TheoryData<string> Translatable() =>
    [
        """{"model":"local","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"max_tokens":10,"stop":["x"]}""",
        $$"""{"model":"local","messages":[{"role":"user","content":"Weather?"}],{{Tools}},"tool_choice":"auto","parallel_tool_calls":true}""",
        $$"""{"model":"local","messages":[{"role":"user","content":"Weather?"}],{{Tools}}}""",
        $$"""{"model":"local",{{ToolHistory}},{{Tools}},"tool_choice":"none","parallel_tool_calls":false}""",
        """{"model":"local","messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"now","arguments":""}}]},{"role":"tool","tool_call_id":"c","content":"noon"}]}""",
        """{"model":"local","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AAQ"}}]}]}""",
        """{"model":"local","messages":[{"role":"user","content":"Who?"}],"response_format":{"type":"json_schema","json_schema":{"name":"p","schema":{"type":"object"}}},"logprobs":false,"top_logprobs":0,"logit_bias":{}}""",
    ];

    [Theory]
    [MemberData(nameof(Translatable))]
    public void ServesWhatItCanTranslate(string json) => Assert.Null(Provider.CannotServe(Ollama, Request(json)));

    [Fact]
    public void NamesWhatModelInfoSaysTheModelLacksFirst()
    {
        var noTools = new Deployment
        {
            Id = Ollama.Id, Alias = Ollama.Alias, Provider = Ollama.Provider, ProviderModel = Ollama.ProviderModel, ApiBase = Ollama.ApiBase,
            SupportsFunctionCalling = false,
        };

        var cannot = Provider.CannotServe(noTools, Request($$"""{"model":"local","messages":[{"role":"user","content":"Weather?"}],{{Tools}},"tool_choice":"required"}"""));

        Assert.Equal("model_info says it does not support function calling, and the request uses tools", cannot);
    }

    [Fact]
    public async Task StreamsOllamasToolCallsAsOpenAiToolCallChunksThatEndInToolCalls()
    {
        // As a thinking model on Ollama answers: its reasoning, then both calls whole in one line, then "stop".
        var provider = Answering("""
            {"model":"qwen3:8b","message":{"role":"assistant","content":"","thinking":"Two tools."},"done":false}
            {"model":"qwen3:8b","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Paris"}}},{"function":{"name":"get_time","arguments":{}}}]},"done":false}
            {"model":"qwen3:8b","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":30,"eval_count":12}

            """);
        var request = Request($$"""{"model":"local","stream":true,"messages":[{"role":"user","content":"Weather and time?"}],{{Tools}}}""");

        var chunks = new List<StreamChunk>();
        await foreach (var chunk in provider.StreamAsync(Ollama, request, new AttemptContext("r1"), CancellationToken.None))
        {
            chunks.Add(chunk);
        }

        Assert.Equal(4, chunks.Count);
        var thinking = Delta(chunks[0]);
        Assert.Equal("assistant", (string?)thinking["role"]);
        Assert.Equal("Two tools.", (string?)thinking["reasoning_content"]);
        Assert.Equal(new ChunkInfo(true, false, false, null, false, HasToolCall: false, HasReasoning: true), chunks[0].Info);

        var calls = Delta(chunks[1])["tool_calls"]!.AsArray();
        Assert.Equal(new ChunkInfo(true, false, false, null, false, HasToolCall: true), chunks[1].Info);
        Assert.Equal(new[] { 0, 1 }, calls.Select(call => (int)call!["index"]!));
        Assert.Equal(new[] { "get_weather", "get_time" }, calls.Select(call => (string?)call!["function"]!["name"]));
        Assert.All(calls, call => Assert.Equal("function", (string?)call!["type"]));
        Assert.All(calls, call => Assert.StartsWith("call_", (string?)call!["id"], StringComparison.Ordinal));
        Assert.NotEqual((string?)calls[0]!["id"], (string?)calls[1]!["id"]);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"city":"Paris"}"""), JsonNode.Parse((string)calls[0]!["function"]!["arguments"]!)));
        Assert.Equal("{}", (string?)calls[1]!["function"]!["arguments"]);

        Assert.Equal("tool_calls", (string?)Chunk(chunks[2])["choices"]![0]!["finish_reason"]);
        Assert.True(chunks[2].Info.HasFinishReason);
        Assert.Equal(new TokenUsage(30, 12), chunks[3].Info.Usage);
        // Every chunk reads, to the router's own inspector, as what the provider says it is.
        Assert.All(chunks, chunk => Assert.Equal(chunk.Info, ChunkInspector.Inspect(chunk.Json.Span)));
    }

    [Fact]
    public async Task AnswersOllamasToolCallWithoutStreamingAsAnOpenAiMessageWithNullContent()
    {
        var provider = Answering("""
            {"model":"qwen3:8b","message":{"role":"assistant","content":"","thinking":"Need the weather.","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Paris","days":3}}}]},"done":true,"done_reason":"stop","prompt_eval_count":30,"eval_count":12}
            """);
        var request = Request($$"""{"model":"local","messages":[{"role":"user","content":"Weather?"}],{{Tools}}}""");

        var result = await provider.CompleteAsync(Ollama, request, new AttemptContext("r2"), CancellationToken.None);

        var choice = JsonNode.Parse(result.Body)!["choices"]![0]!;
        Assert.Equal("tool_calls", (string?)choice["finish_reason"]);
        var message = choice["message"]!.AsObject();
        Assert.True(message.ContainsKey("content"));
        Assert.Null(message["content"]);
        Assert.Equal("Need the weather.", (string?)message["reasoning_content"]);
        var call = message["tool_calls"]!.AsArray().Single()!;
        Assert.StartsWith("call_", (string?)call["id"], StringComparison.Ordinal);
        Assert.Equal("function", (string?)call["type"]);
        Assert.Equal("get_weather", (string?)call["function"]!["name"]);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"city":"Paris","days":3}"""), JsonNode.Parse((string)call["function"]!["arguments"]!)));
        Assert.Equal(new TokenUsage(30, 12), result.Usage);
    }

    [Fact]
    public async Task AnswersPlainTextWithStopAndTheTextAsContent()
    {
        var provider = Answering("""
            {"model":"qwen3:8b","message":{"role":"assistant","content":"Hello"},"done":true,"done_reason":"length","prompt_eval_count":3,"eval_count":1}
            """);

        var result = await provider.CompleteAsync(Ollama, Request("""{"model":"local","messages":[{"role":"user","content":"Hi"}]}"""),
            new AttemptContext("r3"), CancellationToken.None);

        var choice = JsonNode.Parse(result.Body)!["choices"]![0]!;
        Assert.Equal("length", (string?)choice["finish_reason"]);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"role":"assistant","content":"Hello"}"""), choice["message"]));
    }

    private static ChatRequest Request(string json)
    {
        Assert.True(ChatRequest.TryParse(JsonElement.Parse(json), out var request, out var error), error?.Message);
        return request;
    }

    private static JsonNode Body(ChatRequest request, Deployment? deployment = null) =>
        JsonNode.Parse(OllamaProvider.BuildBody(deployment ?? Ollama, request, stream: true))!;

    private static Deployment Deployment(int? numCtx, int? defaultMaxTokens = null) => new()
    {
        Id = Ollama.Id,
        Alias = Ollama.Alias,
        Provider = Ollama.Provider,
        ProviderModel = Ollama.ProviderModel,
        ApiBase = Ollama.ApiBase,
        NumCtx = numCtx,
        DefaultMaxTokens = defaultMaxTokens,
    };

    private static JsonNode Chunk(StreamChunk chunk) => JsonNode.Parse(chunk.Json.Span)!;

    private static JsonNode Delta(StreamChunk chunk) => Chunk(chunk)["choices"]![0]!["delta"]!;

    /// <summary>An adapter whose Ollama answers every call with <paramref name="answer"/>.</summary>
    private static OllamaProvider Answering(string answer)
    {
        var clients = new UpstreamClients(Options.Create(new OnyxOptions())) { CreateHandler = () => new CannedAnswer(answer) };
        return new OllamaProvider(clients, TimeProvider.System);
    }

    private sealed class CannedAnswer(string body) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK)
            {
                Content = new StringContent(body, Encoding.UTF8, "application/x-ndjson"),
                RequestMessage = request,
            });
    }
}
