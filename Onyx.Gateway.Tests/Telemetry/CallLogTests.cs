using System.Net;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Telemetry;

/// <summary>AC2.2.6: one structured record per LLM call, one per failed attempt, no secrets.</summary>
public sealed class CallLogTests : GatewayTest
{
    private Task<CapturedLog> CallRecord() =>
        Gateway.Logs.WaitForAsync(r => r.Category == "Onyx.CallLog" && r.EventId == 3001, TimeSpan.FromSeconds(10));

    [Fact]
    public async Task RecordsModelTokensLatencyAndOutcome()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody(stream: true)) };
        request.Headers.Add("x-request-id", "req-calllog-1");
        using var response = await Client.SendAsync(request);
        await response.Content.ReadAsStringAsync();

        var call = await CallRecord();
        Assert.Equal("req-calllog-1", call["RequestId"]);
        Assert.Equal("manus-primary", call["Alias"]);
        Assert.Equal("together_ai/deepseek-ai/DeepSeek-V3", call["Deployment"]);
        Assert.Equal("deepseek-ai/DeepSeek-V3", call["providerModel"]);
        Assert.Equal(true, call["stream"]);
        Assert.Equal(12, call["promptTokens"]);
        Assert.Equal(Gateway.Primary.Tokens.Count, call["completionTokens"]);
        Assert.Equal(12 + Gateway.Primary.Tokens.Count, call["TotalTokens"]);
        Assert.Equal(false, call["tokensEstimated"]);
        Assert.True((double)call["LatencyMs"]! > 0);
        Assert.True((double)call["TtftMs"]! > 0);
        Assert.Equal(true, call["Success"]);
        Assert.Equal(200, call["Status"]);
        Assert.Equal(false, call["fallback"]);
        Assert.Equal(1, call["attempts"]);
        Assert.Null(call["errorType"]);
    }

    [Fact]
    public async Task RecordsEachFailedAttemptAndTheFallback()
    {
        Gateway.Primary.Fault = FakeFault.Status(503);
        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var call = await CallRecord();
        var attempt = Gateway.Logs.Records.Single(r => r.EventId == 3002);
        Assert.Equal("together_ai/deepseek-ai/DeepSeek-V3", attempt["Deployment"]);
        Assert.Equal("http_503", attempt["Reason"]);
        Assert.Equal(call["RequestId"], attempt["RequestId"]);
        Assert.Equal("ollama/mistral:7b-instruct", call["Deployment"]);
        Assert.Equal(true, call["fallback"]);
        Assert.Equal(2, call["attempts"]);
    }

    [Fact]
    public async Task RecordsTheErrorOfAFailedCall()
    {
        Gateway.Primary.Fault = FakeFault.Status(500);
        Gateway.Fallback.Fault = FakeFault.Status(500);
        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);

        var call = await CallRecord();
        Assert.Equal(false, call["Success"]);
        Assert.Equal(503, call["Status"]);
        Assert.Equal("service_unavailable", call["errorType"]);
        Assert.Contains("Every deployment", (string)call["errorMessage"]!);
    }

    [Fact]
    public async Task CountsTokensItselfWhenTheProviderReportsNone()
    {
        // Neither deployment reports usage: on a busy machine the first call of a fresh gateway can outlast the
        // tests' 1 s first-token limit and be answered by the fallback.
        Gateway.Primary.Fault = FakeFault.NoUsage;
        Gateway.Fallback.Fault = FakeFault.NoUsage;
        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        await response.Content.ReadAsStringAsync();

        var call = await CallRecord();
        Assert.Equal(true, call["Success"]);
        Assert.Equal(true, call["tokensEstimated"]);
        Assert.True((int)call["promptTokens"]! > 0);
        Assert.True((int)call["completionTokens"]! > 0);
    }

    [Fact]
    public async Task NeverLogsKeysOrMessageText()
    {
        Gateway.Primary.FailNext(1, FakeFault.Status(401));
        var secretPrompt = "my-private-prompt-7731";
        using var response = await Client.PostAsync("/v1/chat/completions",
            GatewayHost.Json(GatewayHost.ChatBody(stream: true).Replace("Say hello", secretPrompt, StringComparison.Ordinal)));
        await response.Content.ReadAsStringAsync();
        await CallRecord();

        foreach (var record in Gateway.Logs.Records)
        {
            var text = record.Message + string.Join(' ', record.Fields.Values) + record.Exception;
            Assert.DoesNotContain(GatewayHost.TogetherKey, text);
            Assert.DoesNotContain(secretPrompt, text);
        }
    }
}
