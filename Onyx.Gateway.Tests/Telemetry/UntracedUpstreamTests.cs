using System.Diagnostics;
using System.Net;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Telemetry;

/// <summary>
/// Without a trace exporter, upstream calls carry no trace context: .NET's HTTP diagnostics handler (an Activity and a
/// <c>traceparent</c> header per call, for spans nobody records) is left out of the upstream clients' pipeline.
/// <see cref="TracingTests"/> shows the header is there when traces are exported.
/// </summary>
public sealed class UntracedUpstreamTests : GatewayTest
{
    [Fact]
    public async Task UpstreamCallsCarryNoTraceContextWhenNoTracesAreExported()
    {
        // The client itself traces: its traceparent reaches the gateway, so a request Activity is current there.
        using var client = new Activity("test-client") { ActivityTraceFlags = ActivityTraceFlags.Recorded }.SetIdFormat(ActivityIdFormat.W3C).Start();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody()) };
        using var response = await Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1, Gateway.Primary.Calls);
        Assert.Null(Gateway.Primary.LastRequest!.Header("traceparent"));
    }
}
