using System.Net;
using System.Text.Json.Nodes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Security;

/// <summary>Behind a load balancer the operator names, the audit trail records the client, not the balancer.</summary>
public sealed class TrustedProxyAuditTests : ReplicasOnOneRedis
{
    protected override Dictionary<string, string?> ReplicaSettings => new() { ["LITELLM_MASTER_KEY"] = TestKeys.MasterKey };

    [Theory]
    [InlineData(true, "198.51.100.23")]
    [InlineData(false, "127.0.0.1")]
    public async Task RecordsTheForwardedClientOnlyFromATrustedProxy(bool trusted, string recorded)
    {
        var gateway = await StartReplicaAsync(trusted ? new() { ["Onyx:ForwardedHeaders:KnownProxies:0"] = "127.0.0.1" } : null);
        using var admin = gateway.CreateClient(TestKeys.MasterKey);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody()) };
        request.Headers.Add("X-Forwarded-For", "198.51.100.23");
        request.Headers.Add("x-request-id", "behind-the-balancer");
        using (var response = await admin.SendAsync(request))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var record = await AuditRecordAsync(admin, "behind-the-balancer");

        Assert.Equal(recorded, (string?)record["client_address"]);
    }

    /// <summary>The request's audit record, as <c>GET /audit</c> gives it once the writer has written it to Redis.</summary>
    private async Task<JsonNode> AuditRecordAsync(HttpClient admin, string requestId) =>
        (await RedisWrites.WaitForAsync(Redis.ConnectionString,
            async () => JsonNode.Parse(await admin.GetStringAsync("/audit"))!["data"]!.AsArray().FirstOrDefault(r => (string?)r!["request_id"] == requestId),
            record => record is not null, TimeSpan.FromSeconds(10), $"the audit record of request {requestId}"))!;
}
