using System.Diagnostics;
using System.Net;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Routing;

/// <summary>
/// A primary that sends no first token is let go at <c>Onyx:Routing:FirstTokenTimeout</c>, set to 1 s here (the
/// other tests' gateways have a limit far above any healthy call, so a loaded test run cannot reach it).
/// </summary>
public sealed class FirstTokenLimitTests : GatewayTest
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(1);

    protected override Dictionary<string, string?> Settings => new() { ["Onyx:Routing:FirstTokenTimeout"] = Limit.ToString() };

    [Theory]
    [MemberData(nameof(PrimaryFaults.Silent), MemberType = typeof(PrimaryFaults))]
    public async Task StreamsFromTheFallbackWhenThePrimarySendsNoFirstToken(string fault) =>
        await PrimaryFaults.AssertStreamedByTheFallbackAsync(Gateway, Client, fault);

    [Fact]
    public async Task AbandonsAPrimaryThatSendsNoTokenWithinTheFirstTokenLimit()
    {
        Gateway.Primary.Fault = FakeFault.HangBeforeHeaders;
        var clock = Stopwatch.StartNew();

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody(stream: true)) };
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var firstByte = clock.Elapsed;

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        // The fallback's first token cannot come before the limit, and the primary is let go.
        Assert.True(firstByte >= Limit, $"first byte after {firstByte}");
        await Gateway.Primary.WaitForCancelledAsync(1, TimeSpan.FromSeconds(10));
        Assert.Equal(Gateway.Fallback.ExpectedText, Sse.Content(Sse.Events(await response.Content.ReadAsStringAsync())));
    }
}
