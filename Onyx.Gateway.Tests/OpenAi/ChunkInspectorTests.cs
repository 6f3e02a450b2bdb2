using System.Text;
using System.Text.Json;
using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Tests.OpenAi;

public sealed class ChunkInspectorTests
{
    [Fact]
    public void RoleOnlyChunkCarriesNoContent()
    {
        var info = ChunkInspector.Inspect("""{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"""u8);
        Assert.Equal(new ChunkInfo(false, false, false, null, false), info);
    }

    [Fact]
    public void ContentChunkIsSeenAndItsTextCollected()
    {
        var text = new StringBuilder();
        var info = ChunkInspector.Inspect("""{"choices":[{"index":0,"delta":{"content":"Hel\"lo\u00e9"},"finish_reason":null}]}"""u8, text);
        Assert.True(info.HasContent);
        Assert.False(info.HasFinishReason);
        Assert.Equal("Hel\"loé", text.ToString());
    }

    [Fact]
    public void ToolCallCountsAsFirstToken()
    {
        var info = ChunkInspector.Inspect("""{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":""}}]}}]}"""u8);
        Assert.True(info.HasContent);
    }

    [Fact]
    public void FinishAndUsageChunksAreRecognised()
    {
        var finish = ChunkInspector.Inspect("""{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"""u8);
        Assert.True(finish.HasFinishReason);
        Assert.Null(finish.Usage);

        var usage = ChunkInspector.Inspect("""{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"""u8);
        Assert.True(usage.ChoicesEmpty);
        Assert.Equal(new TokenUsage(12, 5), usage.Usage);
    }

    [Fact]
    public void CachedPromptTokensAreReadFromThePromptTokensDetails()
    {
        var usage = ChunkInspector.Inspect(
            """{"choices":[],"usage":{"prompt_tokens":12,"prompt_tokens_details":{"cached_tokens":8,"audio_tokens":0},"completion_tokens":5,"total_tokens":17}}"""u8);
        Assert.Equal(new TokenUsage(12, 5, CachedPrompt: 8), usage.Usage);

        // More cached than prompt is believed only up to the prompt; details that are not an object are no details.
        Assert.Equal(12, ChunkInspector.Inspect("""{"usage":{"prompt_tokens":12,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":99}}}"""u8).Usage!.Value.CachedPrompt);
        Assert.Equal(new TokenUsage(12, 5), ChunkInspector.Inspect("""{"usage":{"prompt_tokens":12,"completion_tokens":5,"prompt_tokens_details":null}}"""u8).Usage);
    }

    [Fact]
    public void ErrorEventIsRecognised()
    {
        Assert.True(ChunkInspector.Inspect("""{"error":{"message":"overloaded","type":"server_error"}}"""u8).IsError);
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("[1,2]")]
    [InlineData("{\"choices\":[{\"delta\":{\"content\":\"x\"}")]
    public void MalformedChunkThrows(string chunk)
    {
        Assert.ThrowsAny<JsonException>(() => ChunkInspector.Inspect(Encoding.UTF8.GetBytes(chunk)));
    }

    [Theory]
    [InlineData("""{"prompt_tokens":12.0,"completion_tokens":5.0}""", 12, 5)]
    [InlineData("""{"prompt_tokens":12,"completion_tokens":5e0}""", 12, 5)]
    [InlineData("""{"prompt_tokens":12.5,"completion_tokens":-1}""", 0, 0)]
    [InlineData("""{"prompt_tokens":1e12,"completion_tokens":"5"}""", 0, 0)]
    [InlineData("""{"prompt_tokens":{"cached":3},"completion_tokens":[7]}""", 0, 0)]
    public void ReadsTokenCountsWrittenAsFloatsAndNeverThrowsOnOddOnes(string usage, int prompt, int completion)
    {
        var info = ChunkInspector.Inspect(Encoding.UTF8.GetBytes($$"""{"choices":[],"usage":{{usage}}}"""));

        if (prompt == 0 && completion == 0)
        {
            Assert.Null(info.Usage);
        }
        else
        {
            Assert.Equal(new TokenUsage(prompt, completion), info.Usage);
        }
    }

    [Fact]
    public void TellsReasoningAndLogprobsApartFromTheAnswer()
    {
        var text = new StringBuilder();
        var reasoning = ChunkInspector.Inspect("""{"choices":[{"index":0,"delta":{"reasoning_content":"Hmm."},"logprobs":null,"finish_reason":null}]}"""u8, text);
        var answer = ChunkInspector.Inspect("""{"choices":[{"index":0,"delta":{"content":"Yes"},"logprobs":{"content":[]},"finish_reason":null}]}"""u8, text);

        Assert.True(reasoning.HasReasoning && reasoning.HasContent && !reasoning.HasLogprobs);
        Assert.True(!answer.HasReasoning && answer.HasContent && answer.HasLogprobs);
        // Only the answer's text is collected: reasoning is not part of it.
        Assert.Equal("Yes", text.ToString());
    }
}
