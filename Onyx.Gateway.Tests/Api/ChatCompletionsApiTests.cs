using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Api;

public sealed class ChatCompletionsApiTests : GatewayTest
{
    protected override Dictionary<string, string?> Settings => new() { ["Onyx:Limits:MaxRequestBodyBytes"] = "65536" };

    [Fact]
    public async Task AnswersFromThePrimaryWithItsModelAndRouteHeaders()
    {
        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal("chat.completion", (string?)body["object"]);
        Assert.Equal("deepseek-ai/DeepSeek-V3", (string?)body["model"]);
        Assert.Equal(Gateway.Primary.ExpectedText, (string?)body["choices"]![0]!["message"]!["content"]);
        Assert.Equal(12, (int?)body["usage"]!["prompt_tokens"]);

        Assert.Equal("manus-primary", OpenAiResponses.Header(response, "x-onyx-model-alias"));
        Assert.Equal("together_ai/deepseek-ai/DeepSeek-V3", OpenAiResponses.Header(response, "x-onyx-deployment"));
        Assert.Equal("false", OpenAiResponses.Header(response, "x-onyx-fallback"));
        Assert.Equal("1", OpenAiResponses.Header(response, "x-onyx-attempts"));
        Assert.False(string.IsNullOrEmpty(OpenAiResponses.Header(response, "x-request-id")));
        Assert.False(response.Headers.Contains("Server"));

        Assert.Equal(1, Gateway.Primary.Calls);
        Assert.Equal(0, Gateway.Fallback.Calls);
    }

    [Fact]
    public async Task ForwardsTheDeploymentModelKeyAndConfigDefaults()
    {
        using var response = await Client.PostAsync("/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(extra: ""","top_p":0.5,"user":"u-1" """)));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var sent = Gateway.Primary.LastRequest!;
        Assert.Equal("Bearer " + GatewayHost.TogetherKey, sent.Authorization);
        Assert.Equal("deepseek-ai/DeepSeek-V3", sent.Model);
        Assert.Equal(4096, (int?)sent.Json!["max_tokens"]);
        Assert.Equal(0.7, (double?)sent.Json["temperature"]);
        Assert.Equal(0.5, (double?)sent.Json["top_p"]);
        Assert.Equal("u-1", (string?)sent.Json["user"]);
        Assert.False((bool?)sent.Json["stream"]);
    }

    [Fact]
    public async Task ANullFieldIsNotSentAndTheDefaultTakesItsPlaceOnce()
    {
        using var response = await Client.PostAsync("/v1/chat/completions",
            GatewayHost.Json(GatewayHost.ChatBody(extra: ""","max_tokens":null,"temperature":null,"seed":null""")));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var sent = Gateway.Primary.LastRequest!;
        Assert.Single(Regex.Matches(sent.Body, "\"temperature\""));
        Assert.Single(Regex.Matches(sent.Body, "\"max_tokens\""));
        Assert.DoesNotContain("\"seed\"", sent.Body, StringComparison.Ordinal);
        Assert.Equal(4096, (int?)sent.Json!["max_tokens"]);
        Assert.Equal(0.7, (double?)sent.Json["temperature"]);
    }

    [Fact]
    public async Task ClientValuesWinOverConfigDefaults()
    {
        using var response = await Client.PostAsync("/v1/chat/completions",
            GatewayHost.Json(GatewayHost.ChatBody(extra: ""","max_tokens":16,"temperature":0.1""")));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var sent = Gateway.Primary.LastRequest!.Json!;
        Assert.Equal(16, (int?)sent["max_tokens"]);
        Assert.Equal(0.1, (double?)sent["temperature"]);
    }

    [Fact]
    public async Task StreamsFromThePrimaryAsServerSentEvents()
    {
        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var raw = await response.Content.ReadAsStringAsync();
        Assert.EndsWith("data: [DONE]\n\n", raw);
        var events = Sse.Events(raw);
        Assert.Equal(Gateway.Primary.ExpectedText, Sse.Content(events));
        // role chunk + one chunk per token + finish chunk + [DONE]; the usage chunk the gateway asked for is not passed on.
        Assert.Equal(1 + Gateway.Primary.Tokens.Count + 1 + 1, events.Count);
        Assert.DoesNotContain(events, e => e.Contains("\"usage\":{", StringComparison.Ordinal));
        Assert.Equal("stop", (string?)JsonNode.Parse(events[^2])!["choices"]![0]!["finish_reason"]);

        var sent = Gateway.Primary.LastRequest!.Json!;
        Assert.True((bool?)sent["stream"]);
        Assert.True((bool?)sent["stream_options"]!["include_usage"]);
    }

    [Fact]
    public async Task HonoursIncludeUsageWithAFinalUsageChunk()
    {
        using var response = await Client.PostAsync("/v1/chat/completions",
            GatewayHost.Json(GatewayHost.ChatBody(stream: true, extra: ""","stream_options":{"include_usage":true}""")));
        var events = Sse.Events(await response.Content.ReadAsStringAsync());

        Assert.Equal("[DONE]", events[^1]);
        var usage = JsonNode.Parse(events[^2])!;
        Assert.Empty(usage["choices"]!.AsArray());
        Assert.Equal(12, (int?)usage["usage"]!["prompt_tokens"]);
        Assert.Equal(Gateway.Primary.Tokens.Count, (int?)usage["usage"]!["completion_tokens"]);
    }

    [Fact]
    public async Task SendsChunksAsTheyArriveNotAtTheEnd()
    {
        Gateway.Primary.Update(b => b with { TokenDelay = TimeSpan.FromMilliseconds(300), Tokens = ["a", "b", "c", "d", "e", "f"] });
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody(stream: true)) };
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        await using var stream = await response.Content.ReadAsStreamAsync();
        using var reader = new StreamReader(stream);

        // The first content event is readable while the upstream is still producing the rest.
        string? line;
        while ((line = await reader.ReadLineAsync()) is not null && !line.Contains("\"content\":\"a\"", StringComparison.Ordinal))
        {
        }
        Assert.NotNull(line);
        Assert.Equal(0, Gateway.Primary.Cancelled);
        Assert.Contains("data: [DONE]", await reader.ReadToEndAsync());
    }

    [Fact]
    public async Task UnknownModelIsAnOpenAi404ThatRevealsNothing()
    {
        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(model: "gpt-9")));
        var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.NotFound);
        Assert.Equal("model_not_found", (string?)error["code"]);
        Assert.Equal("model", (string?)error["param"]);
        var message = (string)error["message"]!;
        Assert.Contains("gpt-9", message);
        Assert.DoesNotContain("together", message, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(GatewayHost.TogetherKey, message);
        Assert.Equal(0, Gateway.Primary.Calls + Gateway.Fallback.Calls);
    }

    [Theory]
    [InlineData("{\"model\":\"manus-primary\",", null, "invalid_json")]
    [InlineData("{\"model\":\"manus-primary\",\"messages\":[]}", "messages", "invalid_value")]
    [InlineData("{\"model\":\"manus-primary\",\"messages\":[{\"role\":\"wizard\",\"content\":\"hi\"}]}", "messages[0].role", "invalid_value")]
    [InlineData("{\"model\":\"manus-primary\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":7}", "temperature", "invalid_value")]
    public async Task BadRequestsAreRefusedBeforeAnyUpstreamCall(string body, string? param, string code)
    {
        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(body));
        var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.BadRequest);
        Assert.Equal("invalid_request_error", (string?)error["type"]);
        Assert.Equal(param, (string?)error["param"]);
        Assert.Equal(code, (string?)error["code"]);
        Assert.Equal(0, Gateway.Primary.Calls + Gateway.Fallback.Calls);
    }

    [Fact]
    public async Task OversizedBodyIs413()
    {
        var huge = GatewayHost.ChatBody().Replace("Say hello", new string('x', 70_000), StringComparison.Ordinal);
        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(huge));
        var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.RequestEntityTooLarge);
        Assert.Equal("request_too_large", (string?)error["code"]);

        // Chunked (no Content-Length): the limit holds while reading.
        using var chunked = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(huge))) { Headers = { ContentType = new("application/json") } },
        };
        chunked.Headers.TransferEncodingChunked = true;
        using var freshConnection = Gateway.CreateClient();
        using var chunkedResponse = await freshConnection.SendAsync(chunked);
        await OpenAiResponses.ErrorOf(chunkedResponse, HttpStatusCode.RequestEntityTooLarge);
        Assert.Equal(0, Gateway.Primary.Calls);
    }

    [Fact]
    public async Task NonJsonContentTypeIs415()
    {
        using var response = await Client.PostAsync("/v1/chat/completions", new StringContent(GatewayHost.ChatBody(), Encoding.UTF8, "text/plain"));
        await OpenAiResponses.ErrorOf(response, HttpStatusCode.UnsupportedMediaType);
    }

    [Fact]
    public async Task UnknownEndpointIsAnOpenAiError()
    {
        using var response = await Client.GetAsync("/v1/embeddings/nope");
        var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.NotFound);
        Assert.Equal("unknown_url", (string?)error["code"]);
    }

    [Fact]
    public async Task ListsTheConfiguredAliases()
    {
        foreach (var path in new[] { "/v1/models", "/models" })
        {
            var list = JsonNode.Parse(await Client.GetStringAsync(path))!;
            Assert.Equal("list", (string?)list["object"]);
            Assert.Equal(["manus-primary", "manus-fallback"], list["data"]!.AsArray().Select(m => (string?)m!["id"]));
            Assert.All(list["data"]!.AsArray(), m => Assert.Equal("model", (string?)m!["object"]));
        }
        var one = JsonNode.Parse(await Client.GetStringAsync("/v1/models/manus-fallback"))!;
        Assert.Equal("manus-fallback", (string?)one["id"]);
    }

    [Fact]
    public async Task EchoesAPlainRequestId()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody()) };
        request.Headers.Add("x-request-id", "trace-42");
        using var response = await Client.SendAsync(request);
        Assert.Equal("trace-42", OpenAiResponses.Header(response, "x-request-id"));
    }

    [Fact]
    public async Task TalksToOllamaInItsOwnProtocol()
    {
        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(model: "manus-fallback",
            extra: ""","max_tokens":7,"temperature":0.2,"top_p":0.9,"seed":5,"stop":"END" """)));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal("mistral:7b-instruct", (string?)body["model"]);
        Assert.Equal(Gateway.Fallback.ExpectedText, (string?)body["choices"]![0]!["message"]!["content"]);
        Assert.Equal("stop", (string?)body["choices"]![0]!["finish_reason"]);
        Assert.NotNull(body["usage"]);

        var sent = Gateway.Fallback.LastRequest!;
        Assert.Equal("/api/chat", sent.Path);
        Assert.Equal("mistral:7b-instruct", sent.Model);
        Assert.False((bool?)sent.Json!["stream"]);
        Assert.Equal("user", (string?)sent.Json["messages"]![0]!["role"]);
        Assert.Equal("Say hello", (string?)sent.Json["messages"]![0]!["content"]);
        var options = sent.Json["options"]!;
        Assert.Equal(7, (int?)options["num_predict"]);
        Assert.Equal(0.2, (double?)options["temperature"]);
        Assert.Equal(0.9, (double?)options["top_p"]);
        Assert.Equal(5, (int?)options["seed"]);
        Assert.Equal("END", (string?)options["stop"]![0]);
    }

    [Fact]
    public async Task TranslatesOllamasNdjsonStreamIntoOpenAiChunks()
    {
        using var response = await Client.PostAsync("/v1/chat/completions",
            GatewayHost.Json(GatewayHost.ChatBody(model: "manus-fallback", stream: true, extra: ""","stream_options":{"include_usage":true}""")));
        var events = Sse.Events(await response.Content.ReadAsStringAsync());

        Assert.Equal(Gateway.Fallback.ExpectedText, Sse.Content(events));
        var first = JsonNode.Parse(events[0])!;
        Assert.Equal("chat.completion.chunk", (string?)first["object"]);
        Assert.Equal("assistant", (string?)first["choices"]![0]!["delta"]!["role"]);
        Assert.Equal("mistral:7b-instruct", (string?)first["model"]);
        Assert.Equal("stop", (string?)JsonNode.Parse(events[^3])!["choices"]![0]!["finish_reason"]);
        var usage = JsonNode.Parse(events[^2])!;
        Assert.Empty(usage["choices"]!.AsArray());
        Assert.Equal(12, (int?)usage["usage"]!["prompt_tokens"]);
        Assert.Equal("[DONE]", events[^1]);
    }
}
