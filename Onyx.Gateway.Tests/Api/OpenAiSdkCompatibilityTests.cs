using System.ClientModel;
using System.Text;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Chat;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Api;

/// <summary>Any official OpenAI SDK pointed at the gateway works unchanged.</summary>
public sealed class OpenAiSdkCompatibilityTests : IAsyncLifetime
{
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync() => _gateway = await GatewayHost.StartAsync();

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    private ChatClient Sdk(string model = "manus-primary") =>
        new(model, new ApiKeyCredential("unused-by-the-gateway"), new OpenAIClientOptions { Endpoint = new Uri(_gateway.BaseAddress, "/v1") });

    [Fact]
    public async Task OpenAiSdkCompletes()
    {
        ChatCompletion completion = await Sdk().CompleteChatAsync([new UserChatMessage("Say hello")]);

        Assert.Equal(_gateway.Primary.ExpectedText, completion.Content[0].Text);
        Assert.Equal("deepseek-ai/DeepSeek-V3", completion.Model);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal(12, completion.Usage.InputTokenCount);
    }

    [Fact]
    public async Task OpenAiSdkStreamsWithUsage()
    {
        var text = new StringBuilder();
        ChatTokenUsage? usage = null;
        string? model = null;
        // The SDK asks for stream_options.include_usage itself.
        await foreach (var update in Sdk().CompleteChatStreamingAsync([new UserChatMessage("Say hello")]))
        {
            model ??= update.Model;
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
            usage ??= update.Usage;
        }
        Assert.Equal(_gateway.Primary.ExpectedText, text.ToString());
        Assert.Equal("deepseek-ai/DeepSeek-V3", model);
        Assert.NotNull(usage);
        Assert.Equal(_gateway.Primary.Tokens.Count, usage.OutputTokenCount);
    }

    [Fact]
    public async Task OpenAiSdkSeesTheFallbackModelWhenThePrimaryIsDown()
    {
        _gateway.Primary.Fault = FakeFault.Status(503);
        var text = new StringBuilder();
        string? model = null;
        await foreach (var update in Sdk().CompleteChatStreamingAsync([new UserChatMessage("Say hello")]))
        {
            model ??= update.Model;
            text.Append(string.Concat(update.ContentUpdate.Select(p => p.Text)));
        }
        Assert.Equal(_gateway.Fallback.ExpectedText, text.ToString());
        Assert.Equal("mistral:7b-instruct", model);
    }

    [Fact]
    public async Task OpenAiSdkSurfacesGatewayErrors()
    {
        var error = await Assert.ThrowsAsync<ClientResultException>(() => Sdk("no-such-model").CompleteChatAsync([new UserChatMessage("x")]));
        Assert.Equal(404, error.Status);
        Assert.Contains("no-such-model", error.Message);
    }

    [Fact]
    public async Task OpenAiSdkListsModels()
    {
        var models = new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(_gateway.BaseAddress, "/v1") }).GetOpenAIModelClient();
        var list = await models.GetModelsAsync();
        Assert.Equal(["manus-primary", "manus-fallback"], list.Value.Select(m => m.Id));
    }

    [Fact]
    public async Task MicrosoftExtensionsAiChatClientCompletesAndStreams()
    {
        IChatClient client = Sdk().AsIChatClient();

        var response = await client.GetResponseAsync("Say hello");
        Assert.Equal(_gateway.Primary.ExpectedText, response.Text);
        Assert.Equal("deepseek-ai/DeepSeek-V3", response.ModelId);

        var streamed = new StringBuilder();
        await foreach (var update in client.GetStreamingResponseAsync("Say hello"))
        {
            streamed.Append(update.Text);
        }
        Assert.Equal(_gateway.Primary.ExpectedText, streamed.ToString());
        Assert.Equal(2, _gateway.Primary.Calls);
    }
}
