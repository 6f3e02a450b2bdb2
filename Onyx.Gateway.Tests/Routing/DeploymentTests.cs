using Onyx.Gateway.Model;
using Onyx.Gateway.Providers;
using Onyx.Gateway.Routing;

namespace Onyx.Gateway.Tests.Routing;

public sealed class DeploymentTests
{
    [Theory]
    [InlineData("ollama", "http://gpu-box:11434", "http://gpu-box:11434/api/chat")]
    [InlineData("ollama", "https://proxy.example.com/ollama", "https://proxy.example.com/ollama/api/chat")]
    [InlineData("ollama", "https://proxy.example.com/ollama/", "https://proxy.example.com/ollama/api/chat")]
    [InlineData("together_ai", "https://api.together.xyz/v1", "https://api.together.xyz/v1/chat/completions")]
    [InlineData("openai", "https://proxy.example.com/team-a/v1/", "https://proxy.example.com/team-a/v1/chat/completions")]
    public void KeepsTheApiBasesPathForEveryProvider(string prefix, string apiBase, string chat)
    {
        var deployment = new Deployment
        {
            Id = prefix + "/m",
            Alias = "a",
            Provider = ProviderCatalog.ByPrefix[prefix],
            ProviderModel = "m",
            ApiBase = new Uri(apiBase),
        };

        Assert.Equal(chat, deployment.ChatEndpoint.ToString());
    }
}
