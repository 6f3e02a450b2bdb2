using System.Net;
using System.Security.Cryptography;
using System.Text;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Auth;

/// <summary>Keys declared in the config file: by a secret reference or by their SHA-256, never written out.</summary>
public sealed class ConfiguredKeyTests
{
    private const string ReferencedKey = "sk-config-referenced-71c0";
    private const string HashedKey = "sk-config-hashed-3e5b";

    [Fact]
    public async Task AcceptsKeysDeclaredByReferenceAndByHash()
    {
        await using var gateway = await GatewayHost.StartAsync(new()
        {
            ["TEAM_B_KEY"] = ReferencedKey,
            ["general_settings:keys:0:key"] = "os.environ/TEAM_B_KEY",
            ["general_settings:keys:0:user_id"] = "team-b",
            ["general_settings:keys:1:key_hash"] = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(HashedKey))),
            ["general_settings:keys:1:user_id"] = "team-c",
            ["general_settings:keys:1:models:0"] = "manus-fallback",
        });

        using var referenced = gateway.CreateClient(ReferencedKey);
        using var ok = await referenced.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);

        using var hashed = gateway.CreateClient(HashedKey);
        using var forbidden = await hashed.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody("manus-primary")));
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        using var fallback = await hashed.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody("manus-fallback")));
        Assert.Equal(HttpStatusCode.OK, fallback.StatusCode);

        // With keys configured the gateway is no longer open.
        using var anonymous = gateway.CreateClient();
        using var refused = await anonymous.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        await OpenAiResponses.ErrorOf(refused, HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task EnforcesTheBudgetsOfAConfiguredKey()
    {
        await using var gateway = await GatewayHost.StartAsync(new()
        {
            ["TEAM_B_KEY"] = ReferencedKey,
            ["general_settings:keys:0:key"] = "os.environ/TEAM_B_KEY",
            ["general_settings:keys:0:user_id"] = "team-b",
            ["general_settings:keys:0:model_max_budget:manus-fallback:budget_limit"] = "0",
            ["general_settings:keys:0:model_max_budget:manus-fallback:time_period"] = "1d",
        });
        using var client = gateway.CreateClient(ReferencedKey);

        using var refused = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody("manus-fallback")));
        var error = await OpenAiResponses.ErrorOf(refused, HttpStatusCode.BadRequest);
        Assert.Equal("budget_exceeded", (string?)error["type"]);
        Assert.Contains("Model=manus-fallback", (string?)error["message"]);
        using var served = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody("manus-primary")));
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        Assert.Equal(0, gateway.Fallback.Calls);

        var info = System.Text.Json.Nodes.JsonNode.Parse(await client.GetStringAsync("/key/info"))!["info"]!;
        Assert.Equal(0m, (decimal)info["model_max_budget"]!["manus-fallback"]!["budget_limit"]!);
        Assert.Equal("1d", (string?)info["model_max_budget"]!["manus-fallback"]!["time_period"]);
    }

    [Theory]
    [InlineData("team_id", "platform", "general_settings:keys:0:team_id is not a key field")]
    [InlineData("budget_duration", "1w", "general_settings:keys:0:budget_duration must be")]
    [InlineData("model_max_budget:manus-primary:rpm_limit", "10", "general_settings:keys:0:model_max_budget:manus-primary:rpm_limit is not implemented")]
    [InlineData("model_max_budget:gpt-9:budget_limit", "1", "general_settings:keys:0:model_max_budget:gpt-9 names 'gpt-9'")]
    public async Task AKeyFieldTheGatewayDoesNotActOnStopsTheStartNamingIt(string field, string value, string expected)
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAsync(new()
        {
            ["TEAM_B_KEY"] = ReferencedKey,
            ["general_settings:keys:0:key"] = "os.environ/TEAM_B_KEY",
            ["general_settings:keys:0:user_id"] = "team-b",
            [$"general_settings:keys:0:{field}"] = value,
        }));

        var inner = error;
        while (inner.InnerException is not null)
        {
            inner = inner.InnerException;
        }
        Assert.Contains(expected, inner.Message);
    }

    [Fact]
    public async Task RefusesAKeyWrittenIntoTheConfigFile()
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAsync(new()
        {
            ["general_settings:keys:0:key"] = "sk-literal-in-the-file-9999",
            ["general_settings:keys:0:user_id"] = "careless",
        }));

        var inner = error;
        while (inner.InnerException is not null)
        {
            inner = inner.InnerException;
        }
        Assert.Contains("general_settings:keys:0:key must reference a secret", inner.Message);
        Assert.DoesNotContain("sk-literal-in-the-file-9999", inner.Message);
    }
}
