using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Onyx.Gateway.Tests.Api;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Resilience;

/// <summary>The story's breaker as a client sees it: through the gateway, with a fake clock.</summary>
public sealed class CircuitBreakerRoutingTests : GatewayTest
{
    private readonly FakeTimeProvider _time = TestClock.Create();
    protected override Action<IServiceCollection> Services => s => s.AddSingleton<TimeProvider>(_time);

    private async Task<HttpResponseMessage> Chat(bool stream = false) =>
        await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: stream)));

    private async Task<string> PrimaryHealth()
    {
        var health = JsonNode.Parse(await Client.GetStringAsync("/health"))!;
        return (string)health["checks"]!["deployments"]!["data"]!["together_ai/deepseek-ai/DeepSeek-V3"]!;
    }

    [Fact]
    public async Task OpensAfterThreeFailuresAndStopsCallingThePrimary()
    {
        Gateway.Primary.Fault = FakeFault.Status(500);
        for (var i = 0; i < 3; i++)
        {
            using var failedOver = await Chat(stream: i % 2 == 0);
            Assert.Equal(HttpStatusCode.OK, failedOver.StatusCode);
            Assert.Equal("true", OpenAiResponses.Header(failedOver, "x-onyx-fallback"));
        }
        Assert.Equal(3, Gateway.Primary.Calls);
        Assert.StartsWith("circuit open until", await PrimaryHealth());

        for (var i = 0; i < 5; i++)
        {
            using var response = await Chat();
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("1", OpenAiResponses.Header(response, "x-onyx-attempts"));
            Assert.Equal("true", OpenAiResponses.Header(response, "x-onyx-fallback"));
        }
        Assert.Equal(3, Gateway.Primary.Calls); // not touched while open
        Assert.Equal(8, Gateway.Fallback.Calls);

        var transition = Gateway.Logs.Records.Single(r => r.EventId == 2001);
        Assert.Equal("Open", transition["To"]?.ToString());
    }

    [Fact]
    public async Task ResetsAfterTheCooldownWhenTheProbeSucceeds()
    {
        Gateway.Primary.FailNext(3, FakeFault.Status(503));
        for (var i = 0; i < 3; i++)
        {
            (await Chat()).Dispose();
        }
        _time.Advance(TimeSpan.FromSeconds(59));
        (await Chat()).Dispose();
        Assert.Equal(3, Gateway.Primary.Calls);

        _time.Advance(TimeSpan.FromSeconds(1));
        using var probe = await Chat();
        Assert.Equal("false", OpenAiResponses.Header(probe, "x-onyx-fallback"));
        Assert.Equal(4, Gateway.Primary.Calls);
        Assert.Equal("available (circuit closed)", await PrimaryHealth());

        using var after = await Chat(stream: true);
        Assert.Equal("false", OpenAiResponses.Header(after, "x-onyx-fallback"));
        Assert.Equal(5, Gateway.Primary.Calls);
    }

    [Fact]
    public async Task ReopensWhenTheProbeFails()
    {
        Gateway.Primary.Fault = FakeFault.Status(500);
        for (var i = 0; i < 3; i++)
        {
            (await Chat()).Dispose();
        }
        _time.Advance(TimeSpan.FromSeconds(60));
        using var probe = await Chat();
        Assert.Equal(HttpStatusCode.OK, probe.StatusCode); // the fallback answered the probe's request
        Assert.Equal(4, Gateway.Primary.Calls);
        Assert.StartsWith("circuit open until", await PrimaryHealth());

        (await Chat()).Dispose();
        Assert.Equal(4, Gateway.Primary.Calls);
    }

    [Fact]
    public async Task AWrongProviderKeyCoolsTheDeploymentDownAtOnce()
    {
        Gateway.Primary.RequiredApiKey = "some-other-key";
        using var first = await Chat();
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(1, Gateway.Primary.Calls);

        using var second = await Chat();
        Assert.Equal(1, Gateway.Primary.Calls);
        Assert.StartsWith("circuit open until", await PrimaryHealth());
    }

    [Fact]
    public async Task AnswersA503NamingTheOpenBreakersWhenNothingCanBeCalled()
    {
        Gateway.Primary.Fault = FakeFault.Status(500);
        Gateway.Fallback.Fault = FakeFault.Status(500);
        for (var i = 0; i < 3; i++)
        {
            (await Chat()).Dispose();
        }

        using var response = await Chat();

        var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.ServiceUnavailable);
        Assert.Equal("no_deployment_available", (string?)error["code"]);
        Assert.Contains("together_ai/deepseek-ai/DeepSeek-V3 (circuit open)", (string)error["message"]!);
        Assert.Contains("ollama/mistral:7b-instruct (circuit open)", (string)error["message"]!);
        Assert.Equal("60", response.Headers.RetryAfter?.Delta?.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(3, Gateway.Primary.Calls);
        Assert.Equal(3, Gateway.Fallback.Calls);
    }
}
