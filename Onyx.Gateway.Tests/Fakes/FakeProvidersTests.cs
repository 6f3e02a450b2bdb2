using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;

namespace Onyx.Gateway.Tests.Fakes;

public sealed class FakeProvidersFixture : IAsyncLifetime
{
    public FakeOpenAiProvider OpenAi { get; private set; } = null!;

    public FakeOllamaProvider Ollama { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        OpenAi = await FakeOpenAiProvider.StartAsync();
        Ollama = await FakeOllamaProvider.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (OpenAi is not null)
        {
            await OpenAi.DisposeAsync();
        }

        if (Ollama is not null)
        {
            await Ollama.DisposeAsync();
        }
    }
}

public sealed class FakeProvidersTests : IClassFixture<FakeProvidersFixture>, IDisposable
{
    // Safety nets only: every wait below completes in milliseconds unless the fake is broken.
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly FakeOpenAiProvider _openAi;
    private readonly FakeOllamaProvider _ollama;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };

    public FakeProvidersTests(FakeProvidersFixture fixture)
    {
        _openAi = fixture.OpenAi;
        _ollama = fixture.Ollama;
        _openAi.Reset();
        _ollama.Reset();
    }

    public void Dispose() => _http.Dispose();

    [Fact]
    public async Task OpenAiSdkGetsNonStreamingCompletionWithUsage()
    {
        var completion = (await Client("gpt-test", "sk-test").CompleteChatAsync([new UserChatMessage("hi")])).Value;

        Assert.Equal("Hello from the fake", completion.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal("gpt-test", completion.Model);
        Assert.Equal(12, completion.Usage.InputTokenCount);
        Assert.Equal(4, completion.Usage.OutputTokenCount);
        Assert.Equal(16, completion.Usage.TotalTokenCount);
        var request = Assert.Single(_openAi.Requests);
        Assert.Equal("/v1/chat/completions", request.Path);
        Assert.Equal("Bearer sk-test", request.Authorization);
        Assert.Equal("gpt-test", request.Model);
        Assert.Equal(1, _openAi.Calls);
    }

    [Fact]
    public async Task OpenAiSdkStreamsTheConfiguredTokensAndUsage()
    {
        _openAi.Tokens = ["One", ",", " two"];
        _openAi.ResponseModel = "together/model-x";

        var text = new StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        string? model = null;
        await foreach (var update in Client("alias", "sk-test").CompleteChatStreamingAsync([new UserChatMessage("count")]))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            usage ??= update.Usage;
            finish ??= update.FinishReason;
            model ??= update.Model;
        }

        Assert.Equal("One, two", text.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.Equal("together/model-x", model);
        Assert.NotNull(usage);
        Assert.Equal(3, usage.OutputTokenCount);
        Assert.Equal(12, usage.InputTokenCount);
        var body = Assert.Single(_openAi.Requests).Json!;
        Assert.True(body["stream"]!.GetValue<bool>());
        Assert.True(body["stream_options"]!["include_usage"]!.GetValue<bool>());
    }

    [Fact]
    public async Task OpenAiStreamHasRoleChunkTokensFinishAndDoneButNoUsageUnlessAsked()
    {
        using var response = await PostAsync(_openAi.ChatUrl, """{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = await ReadLinesAsync(response);
        Assert.All(events.Where(line => line.Length > 0), line => Assert.StartsWith("data: ", line, StringComparison.Ordinal));
        var data = events.Where(line => line.Length > 0).Select(line => line["data: ".Length..]).ToList();
        Assert.Equal("[DONE]", data[^1]);
        var chunks = data[..^1].Select(json => JsonNode.Parse(json)!).ToList();
        Assert.All(chunks, chunk => Assert.Equal("chat.completion.chunk", chunk["object"]!.GetValue<string>()));
        Assert.All(chunks, chunk => Assert.Null(chunk["usage"]));
        Assert.Equal("assistant", chunks[0]["choices"]![0]!["delta"]!["role"]!.GetValue<string>());
        Assert.Equal("", chunks[0]["choices"]![0]!["delta"]!["content"]!.GetValue<string>());
        Assert.Equal(
            FakeBehavior.DefaultTokens,
            chunks[1..^1].Select(chunk => chunk["choices"]![0]!["delta"]!["content"]!.GetValue<string>()));
        Assert.Equal("stop", chunks[^1]["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.Empty(chunks[^1]["choices"]![0]!["delta"]!.AsObject());
    }

    [Fact]
    public async Task OpenAiRejectsAWrongKeyWithAnOpenAiShapedError()
    {
        _openAi.RequiredApiKey = "sk-right";

        var error = await Assert.ThrowsAsync<ClientResultException>(() => Client("m", "sk-wrong").CompleteChatAsync([new UserChatMessage("hi")]));

        Assert.Equal(401, error.Status);
        var body = JsonNode.Parse(error.GetRawResponse()!.Content.ToString())!;
        Assert.Equal("invalid_api_key", body["error"]!["code"]!.GetValue<string>());
        Assert.Equal("Bearer sk-wrong", _openAi.LastRequest!.Authorization);
    }

    [Fact]
    public async Task FailNextAppliesToTheNextCallsOnly()
    {
        _openAi.FailNext(1, FakeFault.Status(429, headers: new Dictionary<string, string> { ["Retry-After"] = "2" }));
        var uri = _openAi.ChatUrl;
        const string Body = """{"model":"m","messages":[{"role":"user","content":"hi"}]}""";

        using var limited = await PostAsync(uri, Body);
        using var normal = await PostAsync(uri, Body);

        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(2), limited.Headers.RetryAfter?.Delta);
        Assert.Equal("rate_limit_exceeded", JsonNode.Parse(await limited.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, normal.StatusCode);
        Assert.Equal(2, _openAi.Calls);
    }

    [Fact]
    public async Task DropAfterTwoCutsTheStreamAfterTwoTokens()
    {
        _openAi.Fault = FakeFault.DropAfter(2);
        var received = new List<string>();

        var error = await Record.ExceptionAsync(async () =>
        {
            await foreach (var update in Client("m", "sk").CompleteChatStreamingAsync([new UserChatMessage("hi")]))
            {
                received.AddRange(update.ContentUpdate.Select(part => part.Text).Where(text => text.Length > 0));
            }
        });

        Assert.IsAssignableFrom<IOException>(error);
        Assert.Equal(["Hello", " from"], received);
        Assert.Equal(0, _openAi.Cancelled);
    }

    [Fact]
    public async Task HangBeforeHeadersCountsTheClientCancellation()
    {
        _openAi.Fault = FakeFault.HangBeforeHeaders;
        using var cancel = new CancellationTokenSource();
        using var content = new StringContent("""{"model":"m","messages":[]}""", Encoding.UTF8, "application/json");
        var pending = _http.PostAsync(_openAi.ChatUrl, content, cancel.Token);

        await _openAi.WaitForCallsAsync(1, Timeout);
        Assert.False(pending.IsCompleted);
        Assert.Equal(0, _openAi.Cancelled);
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);
        await _openAi.WaitForCancelledAsync(1, Timeout);
        Assert.Equal(1, _openAi.Cancelled);
    }

    [Fact]
    public async Task OllamaStreamsNdjsonTokensThenADoneLineWithCounts()
    {
        using var response = await PostAsync(_ollama.ChatUrl, """{"model":"llama3.2:1b","messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/x-ndjson", response.Content.Headers.ContentType?.MediaType);
        var lines = (await ReadLinesAsync(response)).Where(line => line.Length > 0).Select(line => JsonNode.Parse(line)!).ToList();
        Assert.Equal(5, lines.Count);
        Assert.All(lines, line => Assert.Equal("llama3.2:1b", line["model"]!.GetValue<string>()));
        Assert.All(lines[..^1], line => Assert.False(line["done"]!.GetValue<bool>()));
        Assert.Equal(FakeBehavior.DefaultTokens, lines[..^1].Select(line => line["message"]!["content"]!.GetValue<string>()));
        var done = lines[^1];
        Assert.True(done["done"]!.GetValue<bool>());
        Assert.Equal("stop", done["done_reason"]!.GetValue<string>());
        Assert.Equal("", done["message"]!["content"]!.GetValue<string>());
        Assert.Equal(12, done["prompt_eval_count"]!.GetValue<int>());
        Assert.Equal(4, done["eval_count"]!.GetValue<int>());
        Assert.True(done["eval_duration"]!.GetValue<long>() > 0);
    }

    [Fact]
    public async Task OllamaAnswersOnceWhenNotStreamingAndShowsOnlyKnownModels()
    {
        using var chat = await PostAsync(_ollama.ChatUrl, """{"model":"llama3.2:1b","stream":false,"messages":[]}""");
        using var known = await PostAsync(new Uri(_ollama.BaseUrl, "/api/show"), """{"model":"llama3.2:1b"}""");
        using var unknown = await PostAsync(new Uri(_ollama.BaseUrl, "/api/show"), """{"model":"nope"}""");
        var tags = JsonNode.Parse(await _http.GetStringAsync(new Uri(_ollama.BaseUrl, "/api/tags")))!;

        var answer = JsonNode.Parse(await chat.Content.ReadAsStringAsync())!;
        Assert.Equal("Hello from the fake", answer["message"]!["content"]!.GetValue<string>());
        Assert.True(answer["done"]!.GetValue<bool>());
        Assert.Equal(4, answer["eval_count"]!.GetValue<int>());
        Assert.Equal(HttpStatusCode.OK, known.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("model 'nope' not found", JsonNode.Parse(await unknown.Content.ReadAsStringAsync())!["error"]!.GetValue<string>());
        Assert.Equal("llama3.2:1b", tags["models"]![0]!["name"]!.GetValue<string>());
        Assert.Equal(1, _ollama.Calls);
    }

    [Fact]
    public async Task OllamaErrorLineAfterEndsTheStreamWithAnErrorLine()
    {
        _ollama.Fault = FakeFault.ErrorLineAfter(1);

        using var response = await PostAsync(_ollama.ChatUrl, """{"model":"llama3.2:1b","messages":[]}""");

        var lines = (await ReadLinesAsync(response)).Where(line => line.Length > 0).Select(line => JsonNode.Parse(line)!).ToList();
        Assert.Equal(2, lines.Count);
        Assert.Equal("Hello", lines[0]["message"]!["content"]!.GetValue<string>());
        Assert.Equal("upstream overloaded", lines[1]["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task OllamaCallsAToolInOneLineAndStillSaysStop()
    {
        _ollama.Update(b => b with { ToolCall = "get_weather", Tokens = ["{\"city\":", "\"Paris\"}"] });

        using var streamed = await PostAsync(_ollama.ChatUrl, """
            {"model":"llama3.2:1b","messages":[{"role":"user","content":"Weather?"}],
             "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]}
            """);
        using var whole = await PostAsync(_ollama.ChatUrl, """
            {"model":"llama3.2:1b","stream":false,"messages":[{"role":"user","content":"Weather?"}],
             "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]}
            """);

        var lines = (await ReadLinesAsync(streamed)).Where(line => line.Length > 0).Select(line => JsonNode.Parse(line)!).ToList();
        Assert.Equal(2, lines.Count);
        var call = JsonNode.Parse("""[{"function":{"name":"get_weather","arguments":{"city":"Paris"}}}]""");
        Assert.Equal("", (string?)lines[0]["message"]!["content"]);
        Assert.True(JsonNode.DeepEquals(call, lines[0]["message"]!["tool_calls"]));
        Assert.Equal("stop", (string?)lines[1]["done_reason"]);
        Assert.Null(lines[1]["message"]!["tool_calls"]);
        var answer = JsonNode.Parse(await whole.Content.ReadAsStringAsync())!;
        Assert.True(JsonNode.DeepEquals(call, answer["message"]!["tool_calls"]));
        Assert.Equal("stop", (string?)answer["done_reason"]);
    }

    [Fact]
    public async Task OllamaAnswersTextWhenItWasOfferedNoTools()
    {
        _ollama.Update(b => b with { ToolCall = "get_weather", Tokens = ["{\"city\":", "\"Paris\"}"] });

        using var response = await PostAsync(_ollama.ChatUrl, """{"model":"llama3.2:1b","stream":false,"messages":[{"role":"user","content":"Weather?"}]}""");

        var answer = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal("{\"city\":\"Paris\"}", (string?)answer["message"]!["content"]);
        Assert.Null(answer["message"]!["tool_calls"]);
    }

    private ChatClient Client(string model, string apiKey) =>
        new(model, new ApiKeyCredential(apiKey), new OpenAIClientOptions { Endpoint = _openAi.BaseUrl, RetryPolicy = new ClientRetryPolicy(0) });

    private async Task<HttpResponseMessage> PostAsync(Uri uri, string json)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, uri)
        {
            Content = new StringContent(json, Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "sk-raw");
        return await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
    }

    private static async Task<List<string>> ReadLinesAsync(HttpResponseMessage response)
    {
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var lines = new List<string>();
        while (await reader.ReadLineAsync() is { } line)
        {
            lines.Add(line);
        }

        return lines;
    }
}
