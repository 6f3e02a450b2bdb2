using System.Net;
using Onyx.Gateway.Tests.Auth;
using Onyx.Gateway.Tests.TestHost;
using static Onyx.Gateway.Tests.Api.ChatCompletionsApiTests;

namespace Onyx.Gateway.Tests.Audit;

/// <summary>Without Redis the audit trail is the replica's file, and <c>GET /audit</c> says it cannot read it.</summary>
public sealed class AuditWithoutRedisTests
{
    [Fact]
    public async Task RecordsGoToTheFileWhichOutlivesTheGatewayAndTheApiAnswers503()
    {
        var spill = Directory.CreateTempSubdirectory("onyx-audit-file-").FullName;
        try
        {
            var gateway = await GatewayHost.StartAsync(new()
            {
                ["LITELLM_MASTER_KEY"] = ApiKeyTests.MasterKey,
                [GatewayHost.SpillDirectoryKey] = spill,
            });
            await using (gateway)
            {
                using var admin = gateway.CreateClient(ApiKeyTests.MasterKey);
                for (var i = 0; i < 3; i++)
                {
                    using var ok = await admin.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: i == 1)));
                    Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
                    await ok.Content.ReadAsStringAsync();
                }
                using var response = await admin.GetAsync("/audit");
                Assert.Equal("audit_store_unavailable", (string)(await ErrorOf(response, HttpStatusCode.ServiceUnavailable))["code"]!);
            }

            // The gateway held the file locked while it ran; stopped, it leaves it with every record.
            var lines = File.ReadAllLines(Assert.Single(Directory.GetFiles(spill, "*.jsonl")));
            Assert.Equal(3, lines.Length);
            Assert.All(lines, line => Assert.Contains("\"user_id\":\"master\"", line, StringComparison.Ordinal));
            Assert.All(lines, line => Assert.DoesNotContain(ApiKeyTests.MasterKey, line, StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(spill, recursive: true);
        }
    }

    [Fact]
    public async Task ABadIncludeContentValueStopsTheStartNamingTheKey()
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAsync(new() { ["general_settings:audit:include_content"] = "maybe" }));
        Assert.Contains("general_settings:audit:include_content must be true or false; got 'maybe'", error.ToString(), StringComparison.Ordinal);
    }
}
