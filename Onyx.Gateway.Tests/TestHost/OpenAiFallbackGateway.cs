using Onyx.Gateway.Tests.Fakes;

namespace Onyx.Gateway.Tests.TestHost;

/// <summary>
/// The gateway with its fallback alias (<c>manus-fallback</c>) served by a second fake OpenAI-compatible provider
/// instead of Ollama: a primary and a fallback that speak the same protocol, each a model with its own habits.
/// </summary>
public sealed class OpenAiFallbackGateway : IAsyncDisposable
{
    private OpenAiFallbackGateway(GatewayHost gateway, FakeOpenAiProvider fallback)
    {
        Gateway = gateway;
        Fallback = fallback;
    }

    public GatewayHost Gateway { get; }

    public FakeOpenAiProvider Primary => Gateway.Primary;

    public FakeOpenAiProvider Fallback { get; }

    /// <param name="provider">The fallback deployment's provider prefix (<c>openai</c>, <c>together_ai</c>, <c>deepseek</c>).</param>
    /// <param name="continuation">Its <c>litellm_params.continuation</c>; null leaves the provider's default.</param>
    public static async Task<OpenAiFallbackGateway> StartAsync(string provider = "openai", string? continuation = null, Dictionary<string, string?>? settings = null)
    {
        var fallback = await FakeOpenAiProvider.StartAsync(new FakeBehavior { Models = ["fallback-model"] });
        try
        {
            var all = new Dictionary<string, string?>
            {
                ["model_list:1:litellm_params:model"] = $"{provider}/fallback-model",
                ["model_list:1:litellm_params:api_base"] = fallback.BaseUrl.ToString(),
                ["model_list:1:litellm_params:api_key"] = "sk-fallback-test",
                ["model_list:1:litellm_params:continuation"] = continuation,
            };
            foreach (var (key, value) in settings ?? [])
            {
                all[key] = value;
            }
            return new OpenAiFallbackGateway(await GatewayHost.StartAsync(all), fallback);
        }
        catch
        {
            await fallback.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Fallback.DisposeAsync();
    }
}
