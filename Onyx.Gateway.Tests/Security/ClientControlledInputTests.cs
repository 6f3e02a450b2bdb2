using System.Net;
using System.Text.Json.Nodes;
using Onyx.Gateway.Tests.Api;
using Onyx.Gateway.Tests.Auth;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Security;

/// <summary>
/// What a client sends never grows what the gateway keeps per label, and never forges a log line: a model name no
/// alias can have is refused, made-up ones are counted as "unknown", and the end user's name is escaped in logs.
/// Runs with the metrics tests: its scrape must hold no series of gateways running beside it.
/// </summary>
[Collection(MetricsCollection.Name)]
public sealed class ClientControlledInputTests : GatewayTest
{
    protected override Dictionary<string, string?> Settings => new()
    {
        ["Onyx:RateLimits:EndUser:Rpm"] = "1",
    };

    [Fact]
    public async Task RefusesAModelNameNoAliasCanHave()
    {
        foreach (var model in new[] { new string('m', 257), new string('x', 400 * 1024), "manus-primary\nINFO forged line" })
        {
            using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(
                new JsonObject { ["model"] = model, ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" }) }.ToJsonString()));
            var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.BadRequest);
            Assert.Equal("model", (string?)error["param"]);
            Assert.True(((string)error["message"]!).Length < 200);
        }
        Assert.Equal(0, Gateway.Primary.Calls + Gateway.Fallback.Calls);
    }

    [Fact]
    public async Task NamesNoMadeUpModelInAnyMetricLabel()
    {
        var madeUp = Enumerable.Range(0, 20).Select(_ => "made-up-" + new string('z', 200) + Guid.NewGuid().ToString("N")).ToList();
        foreach (var model in madeUp)
        {
            using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(model: model)));
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }
        using (var ok = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        var scrape = await Client.GetStringAsync("/metrics");

        // Every alias, deployment or model a series names is one the config names (or "unknown"/"none").
        string[] allowed = ["manus-primary", "manus-fallback", "together_ai/deepseek-ai/DeepSeek-V3", "ollama/mistral:7b-instruct",
            "deepseek-ai/DeepSeek-V3", "mistral:7b-instruct", "unknown", "none"];
        var named = LabelValues.Matches(scrape).Select(m => m.Groups["value"].Value).Distinct().ToList();
        Assert.NotEmpty(named);
        Assert.All(named, value => Assert.Contains(value, allowed));
    }

    private static readonly System.Text.RegularExpressions.Regex LabelValues =
        new("(onyx_alias|onyx_deployment|onyx_from|onyx_to|gen_ai_request_model|gen_ai_response_model)=\"(?<value>[^\"]*)\"");

    [Fact]
    public async Task EscapesAnEndUsersNameInLogLinesAndRefusals()
    {
        const string user = "eve\nINFO: Onyx.Gateway[0] forged line";
        for (var i = 0; i < 2; i++)
        {
            using var response = await Client.PostAsync("/v1/chat/completions",
                GatewayHost.Json(GatewayHost.ChatBody(extra: $$""","user":{{JsonValue.Create(user).ToJsonString()}}""")));
            if (i == 1)
            {
                var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.TooManyRequests);
                Assert.DoesNotContain('\n', (string)error["message"]!);
                Assert.Contains("eve\\nINFO", (string)error["message"]!, StringComparison.Ordinal);
            }
        }

        var refusal = await Gateway.Logs.WaitForAsync(r => r.EventId == 5001, TimeSpan.FromSeconds(10));
        Assert.DoesNotContain('\n', refusal.Message);
        Assert.Contains("eve\\nINFO", refusal.Message, StringComparison.Ordinal);
    }
}

/// <summary>
/// <c>/metrics</c> is for this machine or the master key by default, and forwarded headers are believed only from
/// proxies the operator names — so a client cannot claim to be local, and a trusted proxy's clients are not.
/// </summary>
public sealed class MetricsAccessTests
{
    private static HttpRequestMessage Scrape(string? forwardedFor = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        if (forwardedFor is not null)
        {
            request.Headers.Add("X-Forwarded-For", forwardedFor);
        }
        return request;
    }

    [Fact]
    public async Task ServesThisMachineAndTheMasterKeyButNotARemoteClient()
    {
        await using var gateway = await GatewayHost.StartAsync(new()
        {
            ["LITELLM_MASTER_KEY"] = TestKeys.MasterKey,
            ["Onyx:ForwardedHeaders:KnownProxies:0"] = "127.0.0.1",
        });
        using var anonymous = gateway.CreateClient();
        using var admin = gateway.CreateClient(TestKeys.MasterKey);

        using (var local = await anonymous.SendAsync(Scrape()))
        {
            Assert.Equal(HttpStatusCode.OK, local.StatusCode);
        }
        // Through the trusted proxy, a client elsewhere: refused without the master key, served with it.
        using (var remote = await anonymous.SendAsync(Scrape("203.0.113.7")))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, remote.StatusCode);
        }
        using (var remoteAdmin = await admin.SendAsync(Scrape("203.0.113.7")))
        {
            Assert.Equal(HttpStatusCode.OK, remoteAdmin.StatusCode);
        }
    }

    [Fact]
    public async Task IgnoresForwardedHeadersFromAnUntrustedPeer()
    {
        await using var gateway = await GatewayHost.StartAsync(new() { ["LITELLM_MASTER_KEY"] = TestKeys.MasterKey });
        using var client = gateway.CreateClient();

        // No proxy is trusted: the header is the client's own claim, and the connection is what counts.
        using var response = await client.SendAsync(Scrape("203.0.113.7"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task OpenAccessServesAnyone()
    {
        await using var gateway = await GatewayHost.StartAsync(new()
        {
            ["LITELLM_MASTER_KEY"] = TestKeys.MasterKey,
            ["Onyx:ForwardedHeaders:KnownNetworks:0"] = "127.0.0.0/8",
            ["Onyx:Metrics:Access"] = "open",
        });
        using var client = gateway.CreateClient();

        using var response = await client.SendAsync(Scrape("203.0.113.7"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Theory]
    [InlineData("Onyx:Metrics:Access", "public", "Onyx:Metrics:Access must be loopback, open or master-key")]
    [InlineData("Onyx:ForwardedHeaders:KnownProxies:0", "proxy.local", "Onyx:ForwardedHeaders:KnownProxies:0 must be an IP address")]
    [InlineData("Onyx:ForwardedHeaders:KnownNetworks:0", "10.0.0.0", "Onyx:ForwardedHeaders:KnownNetworks:0 must be a network in CIDR form")]
    public async Task ABadSettingStopsTheStartNamingTheKey(string key, string value, string message)
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAsync(new() { [key] = value }));
        Assert.Contains(message, error.ToString(), StringComparison.Ordinal);
    }
}
