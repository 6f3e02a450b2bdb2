using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Routing;

/// <summary><c>hedge_after_ms</c>: a slow primary gets the fallback started beside it; the first token wins.</summary>
public sealed class HedgingTests : GatewayTest
{
    private readonly FakeTimeProvider _time = TestClock.Create();

    protected override Dictionary<string, string?> Settings => new() { ["model_list:0:litellm_params:hedge_after_ms"] = "300" };

    protected override Action<IServiceCollection> Services => s => s.AddSingleton<TimeProvider>(_time);

    [Fact]
    public async Task StartsTheFallbackBesideASlowPrimaryAndCancelsTheLoser()
    {
        Gateway.Primary.Fault = FakeFault.HangBeforeHeaders;

        var pending = Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        await Gateway.Primary.WaitForCallsAsync(1, TimeSpan.FromSeconds(10));
        Assert.Equal(0, Gateway.Fallback.Calls);
        // 300 ms without a first token (the first-token limit, 1 s here, is still far off).
        _time.Advance(TimeSpan.FromMilliseconds(300));
        using var response = await pending;

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("true", OpenAiResponses.Header(response, "x-onyx-fallback"));
        Assert.Equal("2", OpenAiResponses.Header(response, "x-onyx-attempts"));
        Assert.Equal(Gateway.Fallback.ExpectedText, Sse.Content(Sse.Events(await response.Content.ReadAsStringAsync())));
        await Gateway.Primary.WaitForCancelledAsync(1, TimeSpan.FromSeconds(10));
        // The loser is no failure of the primary's: its breaker is untouched.
        Assert.DoesNotContain(Gateway.Logs.Records, r => r.EventId == 3002);
    }

    [Fact]
    public async Task LeavesTheFallbackAloneWhenThePrimaryIsQuick()
    {
        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));

        Assert.Equal("false", OpenAiResponses.Header(response, "x-onyx-fallback"));
        Assert.Equal(Gateway.Primary.ExpectedText, Sse.Content(Sse.Events(await response.Content.ReadAsStringAsync())));
        Assert.Equal(0, Gateway.Fallback.Calls);
    }

    [Fact]
    public async Task FailsOverAsUsualWhenThePrimaryFailsBeforeTheHedge()
    {
        Gateway.Primary.Fault = FakeFault.Status(500);

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));

        Assert.Equal("true", OpenAiResponses.Header(response, "x-onyx-fallback"));
        Assert.Equal(Gateway.Fallback.ExpectedText, Sse.Content(Sse.Events(await response.Content.ReadAsStringAsync())));
        Assert.Equal(1, Gateway.Primary.Calls);
        Assert.Equal(1, Gateway.Fallback.Calls);
    }
}
