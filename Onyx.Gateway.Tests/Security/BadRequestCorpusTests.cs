using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Security;

/// <summary>
/// Every validation rule, one bad request each: the exact status, <c>param</c> and <c>code</c> a client gets, and
/// not one call at either fake upstream.
/// </summary>
public sealed class BadRequestCorpusTests(SecuredGatewayFixture fixture) : IClassFixture<SecuredGatewayFixture>
{
    private const string User = """[{"role":"user","content":"hi"}]""";

    private static string Body(string extra = "", string messages = User, string model = "\"manus-primary\"") =>
        $$"""{"model":{{model}},"messages":{{messages}}{{extra}}}""";

    public static TheoryData<string, string, int, string?, string> Corpus()
    {
        var data = new TheoryData<string, string, int, string?, string>
        {
            // Transport and syntax.
            { "truncated", """{"model":"manus-primary","messages":[{"role":"us""", 400, null, "invalid_json" },
            { "empty", "", 400, null, "invalid_json" },
            { "not an object", "[1,2,3]", 400, null, "invalid_request" },
            { "deeply nested", Body(",\"x\":" + new string('[', 100) + new string(']', 100)), 400, null, "invalid_json" },
            { "trailing garbage", Body() + "}", 400, null, "invalid_json" },
            { "duplicate property", """{"model":"manus-fallback","model":"manus-primary","messages":[{"role":"user","content":"hi"}]}""", 400, null, "invalid_json" },
            { "duplicate property, one name escaped", Body(",\"temperature\":0.1,\"temper\\u0061ture\":5"), 400, null, "invalid_json" },
            { "lone surrogate in a property name", Body(",\"a\\uD800\":1"), 400, null, "invalid_json" },
            { "lone surrogate", Body(messages: """[{"role":"user","content":"a\uD800b"}]"""), 400, "messages[0].content", "invalid_value" },
            { "lone surrogate under an escaped name", Body(messages: """[{"role":"user","c\u006fntent":"a\uD800b"}]"""), 400, "messages[0].content", "invalid_value" },
            // Model and messages.
            { "no model", """{"messages":[{"role":"user","content":"hi"}]}""", 400, "model", "invalid_value" },
            { "model a number", Body(model: "42"), 400, "model", "invalid_value" },
            { "unknown model", Body(model: "\"gpt-9\""), 404, "model", "model_not_found" },
            { "no messages", """{"model":"manus-primary"}""", 400, "messages", "invalid_value" },
            { "empty messages", Body(messages: "[]"), 400, "messages", "invalid_value" },
            { "messages an object", Body(messages: "{}"), 400, "messages", "invalid_value" },
            { "too many messages", Body(messages: "[" + string.Join(',', Enumerable.Repeat("""{"role":"user","content":"hi"}""", SecuredGatewayFixture.MaxMessages + 1)) + "]"), 400, "messages", "invalid_value" },
            { "message a string", Body(messages: "[\"hi\"]"), 400, "messages[0]", "invalid_value" },
            { "unknown role", Body(messages: """[{"role":"root","content":"hi"}]"""), 400, "messages[0].role", "invalid_value" },
            { "content a number", Body(messages: """[{"role":"user","content":7}]"""), 400, "messages[0].content", "invalid_value" },
            { "no content", Body(messages: """[{"role":"user"}]"""), 400, "messages[0].content", "invalid_value" },
            { "unknown part type", Body(messages: """[{"role":"user","content":[{"type":"video","video":{}}]}]"""), 400, "messages[0].content[0].type", "invalid_value" },
            { "text part without text", Body(messages: """[{"role":"user","content":[{"type":"text","text":5}]}]"""), 400, "messages[0].content[0]", "invalid_value" },
            { "image part without url", Body(messages: """[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]"""), 400, "messages[0].content[0]", "invalid_value" },
            { "tool without tool_call_id", Body(messages: """[{"role":"user","content":"hi"},{"role":"tool","content":"42"}]"""), 400, "messages[1].tool_call_id", "invalid_value" },
            // Numbers in range, types right.
            { "temperature above 2", Body(",\"temperature\":2.01"), 400, "temperature", "invalid_value" },
            { "temperature below 0", Body(",\"temperature\":-0.5"), 400, "temperature", "invalid_value" },
            { "temperature infinite", Body(",\"temperature\":1e400"), 400, "temperature", "invalid_value" },
            { "temperature a string", Body(",\"temperature\":\"0.5\""), 400, "temperature", "invalid_value" },
            { "top_p above 1", Body(",\"top_p\":1.5"), 400, "top_p", "invalid_value" },
            { "presence_penalty above 2", Body(",\"presence_penalty\":2.5"), 400, "presence_penalty", "invalid_value" },
            { "frequency_penalty below -2", Body(",\"frequency_penalty\":-3"), 400, "frequency_penalty", "invalid_value" },
            { "max_tokens 0", Body(",\"max_tokens\":0"), 400, "max_tokens", "invalid_value" },
            { "max_tokens fractional", Body(",\"max_tokens\":10.5"), 400, "max_tokens", "invalid_value" },
            { "max_tokens huge", Body(",\"max_tokens\":99999999999999999999"), 400, "max_tokens", "invalid_value" },
            { "max_completion_tokens negative", Body(",\"max_completion_tokens\":-1"), 400, "max_completion_tokens", "invalid_value" },
            { "max_tokens beyond the chain's limit", Body($",\"max_tokens\":{SecuredGatewayFixture.FallbackMaxOutput + 1}"), 400, "max_tokens", "invalid_value" },
            { "max_completion_tokens beyond the chain's limit", Body(",\"max_completion_tokens\":8192"), 400, "max_completion_tokens", "invalid_value" },
            { "n 2", Body(",\"n\":2"), 400, "n", "invalid_value" },
            { "stop five strings", Body(",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]"), 400, "stop", "invalid_value" },
            { "stop a number", Body(",\"stop\":1"), 400, "stop", "invalid_value" },
            { "stream a string", Body(",\"stream\":\"true\""), 400, "stream", "invalid_value" },
            { "stream_options without stream", Body(",\"stream_options\":{\"include_usage\":true}"), 400, "stream_options", "invalid_value" },
            { "seed fractional", Body(",\"seed\":1.5"), 400, "seed", "invalid_value" },
            { "top_logprobs 21", Body(",\"top_logprobs\":21"), 400, "top_logprobs", "invalid_value" },
            { "logprobs a string", Body(",\"logprobs\":\"yes\""), 400, "logprobs", "invalid_value" },
            { "logit_bias out of range", Body(",\"logit_bias\":{\"50256\":-101}"), 400, "logit_bias", "invalid_value" },
            { "response_format unknown", Body(",\"response_format\":{\"type\":\"yaml\"}"), 400, "response_format", "invalid_value" },
            { "response_format type a number", Body(",\"response_format\":{\"type\":5}"), 400, "response_format", "invalid_value" },
            { "tools not functions", Body(",\"tools\":[{\"type\":\"shell\"}]"), 400, "tools[0]", "invalid_value" },
            { "tools type not a string", Body(",\"tools\":[{\"type\":true,\"function\":{\"name\":\"f\"}}]"), 400, "tools[0]", "invalid_value" },
            { "tool_choice a number", Body(",\"tool_choice\":1"), 400, "tool_choice", "invalid_value" },
            { "tool_choice an unknown string", Body(",\"tool_choice\":\"always\""), 400, "tool_choice", "invalid_value" },
            { "user too long", Body(",\"user\":\"" + new string('u', 257) + "\""), 400, "user", "invalid_value" },
        };
        // Per-request provider overrides (LiteLLM's names): never honoured, always refused by name.
        foreach (var (name, value) in new[]
        {
            ("api_base", "\"http://169.254.169.254/latest\""), ("base_url", "\"http://10.0.0.1\""), ("api_key", "\"sk-mine\""),
            ("api_version", "\"2024-01-01\""), ("custom_llm_provider", "\"openai\""), ("extra_headers", "{\"x\":\"y\"}"),
            ("headers", "{\"x\":\"y\"}"), ("extra_body", "{}"), ("aws_secret_access_key", "\"k\""), ("vertex_credentials", "\"c\""),
            ("litellm_metadata", "{}"), ("model_list", "[]"), ("fallbacks", "[\"gpt-4\"]"), ("mock_response", "\"hi\""),
        })
        {
            data.Add("override " + name, Body($",\"{name}\":{value}"), 400, name, "unsupported_parameter");
        }
        // A name is the same name however it is escaped.
        data.Add("override with an escaped name", Body(",\"api\\u005fbase\":\"http://10.0.0.1\""), 400, "api_base", "unsupported_parameter");
        return data;
    }

    [Theory]
    [MemberData(nameof(Corpus))]
    public async Task IsRefusedWithItsParamAndNoUpstreamCall(string name, string body, int status, string? param, string code)
    {
        var before = fixture.UpstreamCalls;
        using var response = await fixture.Client.PostAsync("/v1/chat/completions", GatewayHost.Json(body));

        var error = await OpenAiResponses.ErrorOf(response, (HttpStatusCode)status);
        Assert.True(param == (string?)error["param"], $"{name}: param {(string?)error["param"] ?? "null"}, expected {param ?? "null"}");
        Assert.Equal(code, (string?)error["code"]);
        Assert.Equal(before, fixture.UpstreamCalls);
    }

    [Theory]
    [InlineData("text/plain; charset=utf-8")]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData("application/json; charset=iso-8859-1")]
    [InlineData("application/jsonp")]
    [InlineData(null)]
    public async Task ANonJsonContentTypeIs415(string? contentType)
    {
        var before = fixture.UpstreamCalls;
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(Body()));
        content.Headers.ContentType = contentType is null ? null : MediaTypeHeaderValue.Parse(contentType);
        using var response = await fixture.Client.PostAsync("/v1/chat/completions", content);

        var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.UnsupportedMediaType);
        Assert.Equal("unsupported_media_type", (string?)error["code"]);
        Assert.Equal(before, fixture.UpstreamCalls);
    }

    [Theory]
    [InlineData(new byte[] { 0xFF, 0xFE })]
    [InlineData(new byte[] { 0xC3, 0x28 })]
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 })]
    public async Task InvalidUtf8InAStringIs400NamingWhere(byte[] invalid)
    {
        var before = fixture.UpstreamCalls;
        var body = Encoding.UTF8.GetBytes(Body(messages: """[{"role":"user","content":"a~b"}]"""));
        var at = Array.IndexOf(body, (byte)'~');
        var bytes = body[..at].Concat(invalid).Concat(body[(at + 1)..]).ToArray();
        using var response = await fixture.Client.PostAsync("/v1/chat/completions",
            new ByteArrayContent(bytes) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } });

        var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.BadRequest);
        Assert.Contains((string?)error["param"], new string?[] { "messages[0].content", null });
        Assert.Contains("UTF", (string)error["message"]!, StringComparison.Ordinal);
        Assert.Equal(before, fixture.UpstreamCalls);
    }

    [Fact]
    public async Task AJsonSyntaxErrorSaysWhereTheBodyBroke()
    {
        const string broken = """{"model":"manus-primary","messages":[{"role":"user","content":"hi"},]}""";
        using var response = await fixture.Client.PostAsync("/v1/chat/completions", GatewayHost.Json(broken));

        var message = (string)(await OpenAiResponses.ErrorOf(response, HttpStatusCode.BadRequest))["message"]!;
        Assert.Contains($"LineNumber: 0 | BytePositionInLine: {broken.IndexOf(",]", StringComparison.Ordinal) + 1}", message, StringComparison.Ordinal);
        Assert.DoesNotContain("reader options", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownFieldsAreIgnoredAndNeverForwarded()
    {
        fixture.Gateway.Primary.Reset();
        using var response = await fixture.Client.PostAsync("/v1/chat/completions", GatewayHost.Json(Body(
            $",\"max_tokens\":{SecuredGatewayFixture.FallbackMaxOutput},\"seed\":7,\"metadata\":{{\"team\":\"a\"}},\"store\":true,\"frobnicate\":[1,2],\"temperature\":0.2")));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var sent = fixture.Gateway.Primary.LastRequest!.Json!.AsObject();
        Assert.Equal(SecuredGatewayFixture.FallbackMaxOutput, (int)sent["max_tokens"]!);
        Assert.Equal(7, (int)sent["seed"]!);
        Assert.Equal(0.2, (double)sent["temperature"]!);
        Assert.False(sent.ContainsKey("metadata"));
        Assert.False(sent.ContainsKey("store"));
        Assert.False(sent.ContainsKey("frobnicate"));
    }

    [Fact]
    public async Task ForwardedValuesArriveAsTheClientWroteThemUnderTheirOwnNames()
    {
        fixture.Gateway.Primary.Reset();
        // An escaped field name, text beyond ASCII, a number written with an exponent and a nested object.
        using var response = await fixture.Client.PostAsync("/v1/chat/completions", GatewayHost.Json(Body(
            ",\"temper\\u0061ture\":0.25,\"top_p\":5e-1,\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"r\",\"schema\":{\"type\":\"object\"}}}",
            messages: """[{"role":"user","content":"naïve café ✓ \"quoted\""}]""")));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var sent = fixture.Gateway.Primary.LastRequest!;
        Assert.Contains("\"temperature\":0.25", sent.Body, StringComparison.Ordinal);
        Assert.Contains("\"top_p\":5e-1", sent.Body, StringComparison.Ordinal);
        Assert.Contains("\"content\":\"naïve café ✓ \\\"quoted\\\"\"", sent.Body, StringComparison.Ordinal);
        Assert.Equal("r", (string?)sent.Json!["response_format"]!["json_schema"]!["name"]);
        Assert.Equal("deepseek-ai/DeepSeek-V3", sent.Model);
    }

    [Fact]
    public async Task ALoneSurrogateIsRefusedButAnEscapedPairPasses()
    {
        fixture.Gateway.Primary.Reset();
        using var pair = await fixture.Client.PostAsync("/v1/chat/completions",
            GatewayHost.Json(Body(messages: """[{"role":"user","content":"smile \uD83D\uDE00"}]""")));
        Assert.Equal(HttpStatusCode.OK, pair.StatusCode);
        Assert.Equal("smile \U0001F600", (string?)fixture.Gateway.Primary.LastRequest!.Json!["messages"]![0]!["content"]);

        using var lone = await fixture.Client.PostAsync("/v1/chat/completions",
            GatewayHost.Json(Body(messages: """[{"role":"user","content":"smile \uDE00"}]""")));
        Assert.Equal("messages[0].content", (string?)(await OpenAiResponses.ErrorOf(lone, HttpStatusCode.BadRequest))["param"]);
        Assert.Equal(1, fixture.Gateway.Primary.Calls);
    }
}
