using System.ClientModel;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.AppHost;

[Collection(AppHostCollection.Name)]
public sealed class GatewayThroughAppHostTests(AppHostFixture fixture) : IDisposable
{
    private readonly HttpClient _client = fixture.CreateGatewayClient();

    public void Dispose()
    {
        _client.Dispose();
        fixture.ResetFakes();
    }

    [Fact]
    public async Task HealthAnswers200AndReportsRedisAndDeployments()
    {
        using var response = await _client.GetAsync("/health");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var health = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        var checks = health["checks"]!.AsObject();
        Assert.Equal("Healthy", (string?)checks["replica"]!["status"]);
        Assert.Contains(checks, c => c.Key.Contains("redis", StringComparison.OrdinalIgnoreCase) && (string?)c.Value!["status"] == "Healthy");
        Assert.Equal("available (circuit closed)", (string?)checks["deployments"]!["data"]!["together_ai/deepseek-ai/DeepSeek-V3"]);
        Assert.Equal("available (circuit closed)", (string?)checks["deployments"]!["data"]!["ollama/mistral:7b-instruct"]);

        using var alive = await _client.GetAsync("/alive");
        Assert.Equal(HttpStatusCode.OK, alive.StatusCode);
    }

    [Fact]
    public async Task StreamsEndToEndWithTheOpenAiSdk()
    {
        var sdk = new ChatClient("manus-primary", new ApiKeyCredential(AppHostFixture.MasterKey), new OpenAIClientOptions { Endpoint = new Uri(_client.BaseAddress!, "/v1") });
        var text = new StringBuilder();
        string? model = null;
        await foreach (var update in sdk.CompleteChatStreamingAsync([new UserChatMessage("Say hello")]))
        {
            model ??= update.Model;
            text.Append(string.Concat(update.ContentUpdate.Select(p => p.Text)));
        }

        Assert.Equal(fixture.Primary.ExpectedText, text.ToString());
        Assert.Equal("deepseek-ai/DeepSeek-V3", model);
        Assert.Equal(1, fixture.Primary.Calls);
        // The key came from the Aspire secret parameter, through TOGETHER_API_KEY.
        Assert.Equal("Bearer " + AppHostFixture.TogetherKey, fixture.Primary.LastRequest!.Authorization);
    }

    [Fact]
    public async Task FallbackServesTheFirstTokenWithinThreeSecondsWhenThePrimaryHangs()
    {
        fixture.Primary.Fault = FakeFault.HangBeforeHeaders;
        var clock = Stopwatch.StartNew();

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody(stream: true)) };
        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        string? line;
        while ((line = await reader.ReadLineAsync()) is not null && !line.Contains("\"content\":\"Hello\"", StringComparison.Ordinal))
        {
        }
        var firstToken = clock.Elapsed;

        Assert.NotNull(line);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("true", response.Headers.GetValues("x-onyx-fallback").Single());
        // Story: failover < 3 s. The default first-token limit is 2 s.
        Assert.True(firstToken < TimeSpan.FromSeconds(3), $"first token from the fallback after {firstToken.TotalMilliseconds:0} ms");
        Assert.True(firstToken >= TimeSpan.FromSeconds(2), $"first token after {firstToken.TotalMilliseconds:0} ms: the primary was not given its 2 s");
        await fixture.Primary.WaitForCancelledAsync(1, TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task ListsModelsThroughTheAppHost()
    {
        var list = JsonNode.Parse(await _client.GetStringAsync("/v1/models"))!;
        // The story's two, then the fault matrix's (AppHostFixture).
        Assert.Equal(["manus-primary", "manus-fallback"], list["data"]!.AsArray().Select(m => (string?)m!["id"]).Take(2));
    }
}
