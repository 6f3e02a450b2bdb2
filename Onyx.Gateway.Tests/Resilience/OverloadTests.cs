using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Resilience;

/// <summary><c>max_parallel_requests</c> per deployment: a bounded queue, then the next deployment, then a 503.</summary>
public sealed class OverloadTests
{
    private readonly FakeTimeProvider _time = TestClock.Create();

    private Task<GatewayHost> StartAsync(int queueLimit) => GatewayHost.StartAsync(new()
    {
        ["model_list:0:litellm_params:max_parallel_requests"] = "1",
        ["model_list:1:litellm_params:max_parallel_requests"] = "1",
        ["Onyx:Routing:QueueLimit"] = queueLimit.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Logging:LogLevel:Onyx.Gateway.Resilience"] = "Debug",
    }, services => services.AddSingleton<TimeProvider>(_time));

    [Fact]
    public async Task AFullDeploymentSendsTheNextRequestToTheFallbackAndAFullChainGets503()
    {
        await using var gateway = await StartAsync(queueLimit: 0);
        using var client = gateway.CreateClient();
        gateway.Primary.Fault = FakeFault.HangBeforeHeaders;
        gateway.Fallback.Fault = FakeFault.HangBeforeHeaders;
        using var cancel = new CancellationTokenSource();

        // The primary's one slot, then the fallback's one slot, are taken by calls that hang (the fake clock never
        // lets their first-token limit pass).
        var first = client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)), cancel.Token);
        await gateway.Primary.WaitForCallsAsync(1, TimeSpan.FromSeconds(10));
        var second = client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)), cancel.Token);
        await gateway.Fallback.WaitForCallsAsync(1, TimeSpan.FromSeconds(10));
        Assert.Equal(1, gateway.Primary.Calls);

        using var refused = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        var error = await OpenAiResponses.ErrorOf(refused, HttpStatusCode.ServiceUnavailable);
        Assert.Equal("no_deployment_available", (string?)error["code"]);
        Assert.Contains("overloaded", (string?)error["message"]);
        Assert.Equal("1", OpenAiResponses.Header(refused, "Retry-After"));
        Assert.Equal(1, gateway.Primary.Calls);
        Assert.Equal(1, gateway.Fallback.Calls);

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => second);
    }

    [Fact]
    public async Task AQueuedCallGetsTheSlotWhenItFrees()
    {
        await using var gateway = await StartAsync(queueLimit: 5);
        using var client = gateway.CreateClient();
        gateway.Primary.Fault = FakeFault.HangBeforeHeaders;
        using var cancel = new CancellationTokenSource();
        var first = client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)), cancel.Token);
        await gateway.Primary.WaitForCallsAsync(1, TimeSpan.FromSeconds(10));
        gateway.Primary.Fault = FakeFault.None;

        var queued = client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        await gateway.Logs.WaitForAsync(r => r.EventId == 2101, TimeSpan.FromSeconds(10));
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
        using var response = await queued;

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("false", OpenAiResponses.Header(response, "x-onyx-fallback"));
        Assert.Equal(gateway.Primary.ExpectedText, Sse.Content(Sse.Events(await response.Content.ReadAsStringAsync())));
        Assert.Equal(2, gateway.Primary.Calls);
        Assert.Equal(0, gateway.Fallback.Calls);
    }
}
