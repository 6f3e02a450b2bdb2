using System.Net;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Audit;

/// <summary>Without Redis the audit trail is the gateway's own audit file, and <c>GET /audit</c> says it cannot read it.</summary>
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
                ["LITELLM_MASTER_KEY"] = TestKeys.MasterKey,
                [GatewayHost.SpillDirectoryKey] = spill,
            });
            await using (gateway)
            {
                using var admin = gateway.CreateClient(TestKeys.MasterKey);
                for (var i = 0; i < 3; i++)
                {
                    using var ok = await admin.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: i == 1)));
                    Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
                    await ok.Content.ReadAsStringAsync();
                }
                using var response = await admin.GetAsync("/audit");
                Assert.Equal("audit_store_unavailable", (string)(await OpenAiResponses.ErrorOf(response, HttpStatusCode.ServiceUnavailable))["code"]!);
            }

            // The gateway held the file locked while it ran; stopped, it leaves it with every record.
            Assert.Equal("audit.jsonl", Path.GetFileName(Assert.Single(Directory.GetFiles(spill))));
            var lines = await AuditFiles.ReadLinesAsync(Path.Combine(spill, "audit.jsonl"));
            Assert.Equal(3, lines.Length);
            Assert.All(lines, line => Assert.Contains("\"user_id\":\"master\"", line, StringComparison.Ordinal));
            Assert.All(lines, line => Assert.DoesNotContain(TestKeys.MasterKey, line, StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(spill, recursive: true);
        }
    }

    [Fact]
    public async Task SwitchedOffTheAuditWritesNoRecordAnywhereAndSaysSo()
    {
        var directory = Directory.CreateTempSubdirectory("onyx-audit-off-").FullName;
        try
        {
            var gateway = await GatewayHost.StartAsync(new()
            {
                ["LITELLM_MASTER_KEY"] = TestKeys.MasterKey,
                [GatewayHost.SpillDirectoryKey] = directory,
                ["Onyx:Audit:Enabled"] = "false",
            });
            await using (gateway)
            {
                using var admin = gateway.CreateClient(TestKeys.MasterKey);
                using var ok = await admin.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
                Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
                Assert.Single(gateway.Logs.Records, r => r.EventId == 8015);
            }
            Assert.Empty(Directory.EnumerateFileSystemEntries(directory));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [InlineData("Onyx:Audit:SpillMaxBytes", "1000", "Onyx:Audit:SpillMaxBytes must be at least 65536 bytes")]
    [InlineData("Onyx:Audit:File:MaxBytes", "100", "Onyx:Audit:File:MaxBytes must be at least 65536 bytes")]
    [InlineData("Onyx:Audit:File:MaxFiles", "0", "Onyx:Audit:File:MaxFiles must be from 1 to 1000")]
    [InlineData("Onyx:Audit:TrailName", " prod ", "Onyx:Audit:TrailName must be a name")]
    public async Task ABadAuditFileSettingStopsTheStartNamingTheKey(string key, string value, string message)
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAsync(new() { [key] = value }));
        Assert.Contains(message, error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ABadIncludeContentValueStopsTheStartNamingTheKey()
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAsync(new() { ["general_settings:audit:include_content"] = "maybe" }));
        Assert.Contains("general_settings:audit:include_content must be true or false; got 'maybe'", error.ToString(), StringComparison.Ordinal);
    }
}
