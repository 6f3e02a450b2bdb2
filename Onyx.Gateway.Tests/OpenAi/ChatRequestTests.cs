using System.Text.Json;
using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Tests.OpenAi;

public sealed class ChatRequestTests
{
    [Fact]
    public void AcceptsAnOrdinaryStreamingRequest()
    {
        var ok = ChatRequest.TryParse(JsonElement.Parse("""
            {"model":"manus-primary","stream":true,"stream_options":{"include_usage":true},
             "messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi"}]}]}
            """), out var request, out _);
        Assert.True(ok);
        Assert.Equal("manus-primary", request.Model);
        Assert.True(request.Stream);
        Assert.True(request.IncludeUsage);
        Assert.Equal(2, request.Messages.GetArrayLength());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AsksForTheContinuationOfAPartialAnswerAsAPrefill(bool prefixFlag)
    {
        Assert.True(ChatRequest.TryParse(JsonElement.Parse("""{"model":"m","stream":true,"max_tokens":100,"messages":[{"role":"user","content":"Tell a story"}]}"""), out var request, out _));

        var continuation = request.WithPrefill("Once upon", prefixFlag, maxTokens: 97);

        Assert.Equal(2, continuation.Messages.GetArrayLength());
        var assistant = continuation.Messages[1];
        Assert.Equal("assistant", assistant.GetProperty("role").GetString());
        Assert.Equal("Once upon", assistant.GetProperty("content").GetString());
        Assert.Equal(prefixFlag, assistant.TryGetProperty("prefix", out var prefix) && prefix.GetBoolean());
        // What was already produced counts against the client's limit.
        Assert.Equal(97, continuation.Body.GetProperty("max_tokens").GetInt32());
        // The client's request is left as it was, and the rest of the body goes with the continuation.
        Assert.Equal(1, request.Messages.GetArrayLength());
        Assert.Equal(100, request.Body.GetProperty("max_tokens").GetInt32());
        Assert.Equal("m", continuation.Body.GetProperty("model").GetString());
        Assert.True(continuation.Stream);
    }

    [Fact]
    public void GivesAContinuationWhatIsLeftOfTheDeploymentsDefaultLimit()
    {
        Assert.True(ChatRequest.TryParse(JsonElement.Parse("""{"model":"m","messages":[{"role":"user","content":"Tell a story"}]}"""), out var request, out _));

        var continuation = request.WithPrefill("Once upon", prefixFlag: false, maxTokens: 40);

        Assert.Equal(40, continuation.Body.GetProperty("max_tokens").GetInt32());
        Assert.False(continuation.Body.TryGetProperty("max_completion_tokens", out _));
    }

    [Theory]
    [InlineData("""[]""", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}]}""", "model")]
    [InlineData("""{"model":"","messages":[{"role":"user","content":"x"}]}""", "model")]
    [InlineData("""{"model":"m"}""", "messages")]
    [InlineData("""{"model":"m","messages":[]}""", "messages")]
    [InlineData("""{"model":"m","messages":"hi"}""", "messages")]
    [InlineData("""{"model":"m","messages":[{"content":"x"}]}""", "messages[0].role")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"},{"role":"robot","content":"x"}]}""", "messages[1].role")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":42}]}""", "messages[0].content")]
    [InlineData("""{"model":"m","messages":[{"role":"user"}]}""", "messages[0].content")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":[{"text":"no type"}]}]}""", "messages[0].content[0]")]
    [InlineData("""{"model":"m","messages":[{"role":"tool","content":"42"}]}""", "messages[0].tool_call_id")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}""", "stream")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}""", "stream_options")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":2.5}""", "temperature")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"top_p":-0.1}""", "top_p")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}""", "max_tokens")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1.5}""", "max_tokens")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"n":2}""", "n")]
    public void RejectsAndNamesTheBadField(string body, string? param)
    {
        Assert.False(ChatRequest.TryParse(JsonElement.Parse(body), out _, out var error));
        Assert.Equal("invalid_request_error", error.Type);
        Assert.Equal(param, error.Param);
        Assert.False(string.IsNullOrWhiteSpace(error.Message));
    }

    [Fact]
    public void AcceptsAnAssistantTurnThatOnlyCallsTools()
    {
        Assert.True(ChatRequest.TryParse(JsonElement.Parse("""
            {"model":"m","messages":[{"role":"user","content":"x"},
              {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"c1","content":"42"}]}
            """), out _, out _));
    }

    [Fact]
    public void ANullFieldCountsAsAbsentAndAnEscapedNameAsItsName()
    {
        Assert.True(ChatRequest.TryParse(JsonElement.Parse("""
            {"mod\u0065l":"m","messages":[{"role":"user","content":"x"}],
             "stream":null,"temperature":null,"max_tokens":null,"max_completion_tokens":7,"user":null,"tools":null}
            """), out var request, out var error), error?.Message);
        Assert.Equal("m", request.Model);
        Assert.False(request.Stream);
        Assert.Null(request.User);
        Assert.Equal(7, request.RequestedMaxTokens);
    }
}
