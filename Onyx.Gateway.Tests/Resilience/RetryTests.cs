using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;
using static Onyx.Gateway.Tests.Api.ChatCompletionsApiTests;

namespace Onyx.Gateway.Tests.Resilience;

/// <summary>A provider's Retry-After, and num_retries with backoff inside the retry deadline.</summary>
public sealed class RetryTests
{
    [Fact]
    public async Task AProvidersRetryAfterRestsTheDeploymentExactlyThatLong()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-26T08:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        await using var gateway = await GatewayHost.StartAsync(services: s => s.AddSingleton<TimeProvider>(time));
        using var client = gateway.CreateClient();
        gateway.Primary.FailNext(1, FakeFault.Status(429, headers: new Dictionary<string, string> { ["Retry-After"] = "7" }));

        using var limited = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        // The provider's limit is not the client's fault: the fallback serves it.
        Assert.Equal(HttpStatusCode.OK, limited.StatusCode);
        Assert.Equal("true", Header(limited, "x-onyx-fallback"));

        time.Advance(TimeSpan.FromSeconds(7) - TimeSpan.FromMilliseconds(1));
        using var resting = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal("true", Header(resting, "x-onyx-fallback"));
        Assert.Equal(1, gateway.Primary.Calls);

        time.Advance(TimeSpan.FromMilliseconds(1));
        using var back = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal("false", Header(back, "x-onyx-fallback"));
        Assert.Equal(2, gateway.Primary.Calls);
        Assert.Equal(2, gateway.Fallback.Calls);
    }

    [Fact]
    public async Task RetriesARetryableFailureOnTheSameDeployment()
    {
        await using var gateway = await GatewayHost.StartAsync(new() { ["router_settings:num_retries"] = "2" });
        using var client = gateway.CreateClient();
        gateway.Primary.FailNext(2, FakeFault.Status(502));

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("false", Header(response, "x-onyx-fallback"));
        Assert.Equal("3", Header(response, "x-onyx-attempts"));
        Assert.Equal(gateway.Primary.ExpectedText, Sse.Content(Sse.Events(await response.Content.ReadAsStringAsync())));
        Assert.Equal(3, gateway.Primary.Calls);
        Assert.Equal(0, gateway.Fallback.Calls);
    }

    [Fact]
    public async Task FailsOverInsteadOfRetryingPastTheRetryDeadlineOrOnAnUnretryableFailure()
    {
        await using var gateway = await GatewayHost.StartAsync(new() { ["router_settings:num_retries"] = "3", ["Onyx:Routing:RetryDeadline"] = "00:00:00" });
        using var client = gateway.CreateClient();
        gateway.Primary.FailNext(1, FakeFault.Status(500));

        using var late = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal("true", Header(late, "x-onyx-fallback"));
        Assert.Equal(1, gateway.Primary.Calls);

        await using var other = await GatewayHost.StartAsync(new() { ["router_settings:num_retries"] = "3" });
        using var otherClient = other.CreateClient();
        other.Primary.FailNext(1, FakeFault.MalformedChunk);
        using var malformed = await otherClient.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        Assert.Equal("true", Header(malformed, "x-onyx-fallback"));
        Assert.Equal(1, other.Primary.Calls);
    }
}
