using System.Net;
using System.Text.Json.Nodes;

namespace Onyx.Gateway.Tests.TestHost;

/// <summary>The master key most tests configure (<c>LITELLM_MASTER_KEY</c>), and keys made with it.</summary>
public static class TestKeys
{
    public const string MasterKey = "sk-master-test-0d1f9a77c3";

    /// <summary>A key made through <c>POST /key/generate</c> with <paramref name="body"/>, sent with <see cref="MasterKey"/>.</summary>
    public static async Task<string> GenerateAsync(GatewayHost gateway, string body)
    {
        using var admin = gateway.CreateClient(MasterKey);
        using var response = await admin.PostAsync("/key/generate", GatewayHost.Json(body));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (string)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["key"]!;
    }
}
