using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Onyx.Gateway.Tests.Api;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Routing;

public sealed class FallbackTests : GatewayTest
{
    [Theory]
    [MemberData(nameof(PrimaryFaults.BeforeFirstToken), MemberType = typeof(PrimaryFaults))]
    public async Task StreamsFromTheFallbackWhenThePrimaryFailsBeforeTheFirstToken(string fault) =>
        await PrimaryFaults.AssertStreamedByTheFallbackAsync(Gateway, Client, fault);

    [Theory]
    [InlineData("500")]
    [InlineData("502-html")]
    [InlineData("401")]
    [InlineData("malformed")]
    [InlineData("error-first-event")]
    public async Task AnswersFromTheFallbackWhenThePrimaryFailsWithoutStreaming(string fault)
    {
        Gateway.Primary.Fault = PrimaryFaults.Fault(fault);

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal("mistral:7b-instruct", (string?)body["model"]);
        Assert.Equal(Gateway.Fallback.ExpectedText, (string?)body["choices"]![0]!["message"]!["content"]);
        Assert.Equal("true", OpenAiResponses.Header(response, "x-onyx-fallback"));
        Assert.Equal(1, Gateway.Fallback.Calls);
    }

    [Fact]
    public async Task FailsOverWhenThePrimaryRefusesConnections()
    {
        await using var gateway = await GatewayHost.StartAsync(new() { ["Onyx:Providers:together_ai:ApiBase"] = $"http://127.0.0.1:{ClosedPort()}/v1" });
        using var client = gateway.CreateClient();

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("true", OpenAiResponses.Header(response, "x-onyx-fallback"));
        Assert.Equal(gateway.Fallback.ExpectedText, Sse.Content(Sse.Events(await response.Content.ReadAsStringAsync())));
    }

    [Fact]
    public async Task ReturnsTheClientsOwnMistakeAsIsWithoutFallingOver()
    {
        Gateway.Primary.Fault = FakeFault.Status(400, FakeOpenAiProvider.ErrorBody("Invalid value for 'top_k': must be an integer.", param: "top_k", code: "invalid_value"));

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));

        var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.BadRequest);
        Assert.Equal("invalid_request_error", (string?)error["type"]);
        Assert.Equal("upstream_rejected_request", (string?)error["code"]);
        Assert.Contains("Invalid value for 'top_k'", (string)error["message"]!);
        Assert.Equal(1, Gateway.Primary.Calls);
        Assert.Equal(0, Gateway.Fallback.Calls);
    }

    [Fact]
    public async Task SaysWhichDeploymentsWereTriedWhenAllFail()
    {
        Gateway.Primary.Fault = FakeFault.Status(500);
        Gateway.Fallback.Fault = FakeFault.Status(503);

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));

        var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.ServiceUnavailable);
        Assert.Equal("all_deployments_failed", (string?)error["code"]);
        var message = (string)error["message"]!;
        Assert.Contains("together_ai/deepseek-ai/DeepSeek-V3 (http_500)", message);
        Assert.Contains("ollama/mistral:7b-instruct (http_503)", message);
        Assert.DoesNotContain(GatewayHost.TogetherKey, message);
        Assert.DoesNotContain("127.0.0.1", message);
    }

    [Fact]
    public async Task EndsACutStreamWithAnErrorEventAndNoDoneWhenNoDeploymentCanContinueIt()
    {
        // The fallback alias has no deployment after its own.
        Gateway.Fallback.Update(b => b with { Tokens = ["one", " two", " three", " four"], Fault = FakeFault.DropAfter(2) });

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(model: "manus-fallback", stream: true)));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = Sse.Events(await response.Content.ReadAsStringAsync());
        Assert.DoesNotContain("[DONE]", events);
        Assert.Equal("one two", Sse.Content(events[..^1]));
        var error = JsonNode.Parse(events[^1])!["error"]!;
        Assert.Equal("stream_interrupted", (string?)error["code"]);
        Assert.Contains("incomplete", (string)error["message"]!);
        Assert.DoesNotContain(events, e => e.Contains("\"finish_reason\":\"stop\"", StringComparison.Ordinal));
        Assert.Equal(1, Gateway.Fallback.Calls);
        Assert.Equal(0, Gateway.Primary.Calls);
    }

    [Fact]
    public async Task EndsAStalledStreamWithAnErrorEventWhenTheAliasTurnedResumeOff()
    {
        await using var gateway = await GatewayHost.StartAsync(new()
        {
            ["Onyx:Routing:StreamIdleTimeout"] = "00:00:00.500",
            ["model_list:0:litellm_params:resume_streams"] = "false",
        });
        gateway.Primary.Fault = FakeFault.StallAfter(1);
        using var client = gateway.CreateClient();

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));

        var events = Sse.Events(await response.Content.ReadAsStringAsync());
        Assert.Equal("stream_interrupted", (string?)JsonNode.Parse(events[^1])!["error"]!["code"]);
        Assert.DoesNotContain("[DONE]", events);
        await gateway.Primary.WaitForCancelledAsync(1, TimeSpan.FromSeconds(10));
        Assert.Equal(0, gateway.Fallback.Calls);
    }

    [Fact]
    public async Task CompletesAStreamThatFinishedButNeverSentDone()
    {
        Gateway.Primary.Fault = FakeFault.EndWithoutDone;

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));

        var events = Sse.Events(await response.Content.ReadAsStringAsync());
        Assert.Equal(Gateway.Primary.ExpectedText, Sse.Content(events));
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal(0, Gateway.Fallback.Calls);
    }

    [Fact]
    public async Task TreatsAnOllamaErrorLineAsAFailure()
    {
        Gateway.Fallback.Fault = FakeFault.ErrorFirstEvent;

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(model: "manus-fallback", stream: true)));

        var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.ServiceUnavailable);
        Assert.Contains("ollama/mistral:7b-instruct (error_event)", (string)error["message"]!);
    }

    [Fact]
    public async Task CancelsTheUpstreamWhenTheClientDisconnects()
    {
        Gateway.Primary.Update(b => b with { Tokens = Enumerable.Repeat(" word", 50).ToList(), TokenDelay = TimeSpan.FromMilliseconds(200) });
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody(stream: true)) })
        using (var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            var stream = await response.Content.ReadAsStreamAsync();
            var buffer = new byte[64];
            Assert.True(await stream.ReadAsync(buffer) > 0);
        } // the client goes away mid-answer

        await Gateway.Primary.WaitForCancelledAsync(1, TimeSpan.FromSeconds(5));
        var call = await Gateway.Logs.WaitForAsync(r => r.Category == "Onyx.CallLog" && r.EventId == 3001, TimeSpan.FromSeconds(5));
        Assert.Equal(499, call["Status"]);
    }

    [Fact]
    public async Task SkipsADeploymentWithoutAKey()
    {
        await using var gateway = await GatewayHost.StartAsync(new() { ["TOGETHER_API_KEY"] = "" });
        using var client = gateway.CreateClient();

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("true", OpenAiResponses.Header(response, "x-onyx-fallback"));
        Assert.Equal("1", OpenAiResponses.Header(response, "x-onyx-attempts"));
        Assert.Equal(0, gateway.Primary.Calls);
        var health = JsonNode.Parse(await client.GetStringAsync("/health"))!;
        Assert.Contains("TOGETHER_API_KEY", (string)health["checks"]!["deployments"]!["data"]!["together_ai/deepseek-ai/DeepSeek-V3"]!);
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
