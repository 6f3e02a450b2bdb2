using System.Net;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Onyx.Gateway.Model;
using Onyx.Gateway.Providers;
using Onyx.Gateway.Routing;
using Onyx.Gateway.Tests.Api;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Providers;

/// <summary>
/// A non-streamed answer is read whole, but never past <see cref="UpstreamClients.MaxAnswerBytes"/>: a longer one is a
/// malformed answer, so the next deployment is tried, and the gateway's memory is not the upstream's to fill.
/// </summary>
public sealed class AnswerSizeTests : GatewayTest
{
    /// <summary>One token of 17 MiB: the fake declares the body's length, past the bound.</summary>
    private static readonly string HugeToken = new('a', 17 * 1024 * 1024);

    [Fact]
    public async Task AnAnswerLargerThanTheBoundIsServedByTheFallback()
    {
        Gateway.Primary.Update(b => b with { Tokens = [HugeToken] });

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("true", OpenAiResponses.Header(response, "x-onyx-fallback"));
        Assert.Contains(Gateway.Fallback.ExpectedText, await response.Content.ReadAsStringAsync());
        // A malformed answer is asked for once more before the fallback.
        Assert.Equal(2, Gateway.Primary.Calls);
    }

    [Fact]
    public async Task WhenNoDeploymentCanAnswerTheErrorSaysTheAnswerWasMalformed()
    {
        Gateway.Primary.Update(b => b with { Tokens = [HugeToken] });
        Gateway.Fallback.Fault = FakeFault.Status(503);

        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));

        var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.ServiceUnavailable);
        Assert.Contains("together_ai/deepseek-ai/DeepSeek-V3 (malformed_response)", (string)error["message"]!);
    }

    [Theory]
    [InlineData(1_000, true)]
    [InlineData(64 * 1024, true)]
    [InlineData(64 * 1024 + 1, false)]
    [InlineData(300_000, false)]
    public async Task AnAnswerOfUndeclaredLengthIsReadUpToTheBound(int length, bool fits)
    {
        var deployment = Gateway.Services.GetRequiredService<RoutingTable>().Deployments[0];
        var bytes = Encoding.ASCII.GetBytes(new string('x', length));
        // A stream that cannot seek: the content has no length to declare, as with a chunked answer.
        using var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StreamContent(new UnseekableStream(bytes)) };
        Assert.Null(response.Content.Headers.ContentLength);

        if (fits)
        {
            Assert.Equal(bytes, await UpstreamClients.ReadAnswerAsync(response, deployment, CancellationToken.None, maxBytes: 64 * 1024));
        }
        else
        {
            var error = await Assert.ThrowsAsync<UpstreamException>(() => UpstreamClients.ReadAnswerAsync(response, deployment, CancellationToken.None, maxBytes: 64 * 1024));
            Assert.Equal(FailureKind.Malformed, error.Kind);
            Assert.Contains("the answer is larger than", error.Message);
        }
    }

    private sealed class UnseekableStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;
    }
}
