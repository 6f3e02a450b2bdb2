using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Auth;

/// <summary>Keys as a caller meets them: the master key, keys made with /key/generate, and every way a key is refused.</summary>
public sealed class ApiKeyTests : GatewayTest
{
    private readonly FakeTimeProvider _time = TestClock.Create();

    protected override Dictionary<string, string?> Settings => new() { ["LITELLM_MASTER_KEY"] = TestKeys.MasterKey };

    protected override Action<IServiceCollection> Services => services => services.AddSingleton<TimeProvider>(_time);

    [Fact]
    public async Task RefusesAMissingOrWrongKeyWithAnOpenAi401()
    {
        using var missing = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal("missing_api_key", (string?)(await OpenAiResponses.ErrorOf(missing, HttpStatusCode.Unauthorized))["code"]);
        Assert.Equal("Bearer", missing.Headers.WwwAuthenticate.Single().Scheme);

        using var wrong = Gateway.CreateClient("sk-not-a-key-at-all-1234");
        using var refused = await wrong.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        var error = await OpenAiResponses.ErrorOf(refused, HttpStatusCode.Unauthorized);
        Assert.Equal("invalid_api_key", (string?)error["code"]);
        Assert.Equal("authentication_error", (string?)error["type"]);

        using var models = await wrong.GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.Unauthorized, models.StatusCode);
        Assert.Equal(0, Gateway.Primary.Calls);
    }

    [Fact]
    public async Task HealthEndpointsStayOpen()
    {
        using var health = await Client.GetAsync("/health");
        using var alive = await Client.GetAsync("/alive");

        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal(HttpStatusCode.OK, alive.StatusCode);
    }

    [Fact]
    public async Task TheMasterKeyMakesKeysThatWorkButCannotMakeKeys()
    {
        using var admin = Gateway.CreateClient(TestKeys.MasterKey);
        using var generated = await admin.PostAsync("/key/generate", GatewayHost.Json("""{"user_id":"team-a","key_alias":"ci","metadata":{"team":"a"}}"""));
        Assert.Equal(HttpStatusCode.OK, generated.StatusCode);
        var body = JsonNode.Parse(await generated.Content.ReadAsStringAsync())!;
        var key = (string)body["key"]!;
        Assert.StartsWith("sk-", key);
        Assert.Equal("team-a", (string?)body["user_id"]);
        Assert.Equal($"sk-...{key[^4..]}", (string?)body["key_name"]);

        using var user = Gateway.CreateClient(key);
        using var answer = await user.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.Equal(1, Gateway.Primary.Calls);
        // The upstream gets the provider's key, never the caller's.
        Assert.Equal("Bearer " + GatewayHost.TogetherKey, Gateway.Primary.LastRequest!.Authorization);

        var info = JsonNode.Parse(await user.GetStringAsync("/key/info"))!;
        Assert.Equal((string?)body["token"], (string?)info["key"]);
        Assert.Equal("team-a", (string?)info["info"]!["user_id"]);
        Assert.Equal("a", (string?)info["info"]!["metadata"]!["team"]);
        Assert.DoesNotContain(key, info.ToJsonString());

        using var escalation = await user.PostAsync("/key/generate", GatewayHost.Json("{}"));
        Assert.Equal("master_key_required", (string?)(await OpenAiResponses.ErrorOf(escalation, HttpStatusCode.Forbidden))["code"]);
    }

    [Fact]
    public async Task AnExpiredKeyIsRefused()
    {
        var key = await GenerateAsync("""{"user_id":"temp","duration":"1h"}""");
        using var user = Gateway.CreateClient(key);
        using var before = await user.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal(HttpStatusCode.OK, before.StatusCode);

        _time.Advance(TimeSpan.FromHours(1));

        using var after = await user.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal("expired_api_key", (string?)(await OpenAiResponses.ErrorOf(after, HttpStatusCode.Unauthorized))["code"]);
    }

    [Fact]
    public async Task ADeletedKeyIsRefused()
    {
        var key = await GenerateAsync("""{"user_id":"gone"}""");
        using var admin = Gateway.CreateClient(TestKeys.MasterKey);
        using var deleted = await admin.PostAsync("/key/delete", JsonContent.Create(new { keys = new[] { key } }));
        Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);

        using var user = Gateway.CreateClient(key);
        using var refused = await user.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal("invalid_api_key", (string?)(await OpenAiResponses.ErrorOf(refused, HttpStatusCode.Unauthorized))["code"]);

        using var again = await admin.PostAsync("/key/delete", JsonContent.Create(new { keys = new[] { key } }));
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
    }

    [Fact]
    public async Task AKeyLimitedToSomeModelsGets403ForTheOthers()
    {
        var key = await GenerateAsync("""{"user_id":"fallback-only","models":["manus-fallback"]}""");
        using var user = Gateway.CreateClient(key);

        using var refused = await user.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody("manus-primary")));
        var error = await OpenAiResponses.ErrorOf(refused, HttpStatusCode.Forbidden);
        Assert.Equal("model_not_allowed", (string?)error["code"]);
        Assert.Equal("model", (string?)error["param"]);
        using var allowed = await user.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody("manus-fallback")));
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);

        var models = JsonNode.Parse(await user.GetStringAsync("/v1/models"))!;
        Assert.Equal(["manus-fallback"], models["data"]!.AsArray().Select(m => (string?)m!["id"]));
        Assert.Equal(0, Gateway.Primary.Calls);
    }

    [Fact]
    public async Task RefusesBadKeyRequestsWithA400ThatNamesTheField()
    {
        using var admin = Gateway.CreateClient(TestKeys.MasterKey);
        foreach (var (body, param) in new[]
        {
            ("""{"models":["no-such-model"]}""", "models"),
            ("""{"duration":"soon"}""", "duration"),
            ("""{"rpm_limit":"lots"}""", "rpm_limit"),
            // LiteLLM fields this gateway does not act on are refused by name, never accepted and ignored.
            ("""{"team_id":"platform"}""", "team_id"),
            ("""{"max_budget":-1}""", "max_budget"),
            ("""{"budget_duration":"1mo"}""", "budget_duration"),
            ("""{"model_max_budget":{"manus-primary":0.5}}""", "model_max_budget"),
            ("""{"model_max_budget":{"manus-primary":{"budget_limit":0.5,"tpm_limit":100}}}""", "model_max_budget"),
        })
        {
            using var response = await admin.PostAsync("/key/generate", GatewayHost.Json(body));
            Assert.Equal(param, (string?)(await OpenAiResponses.ErrorOf(response, HttpStatusCode.BadRequest))["param"]);
        }
    }

    [Fact]
    public async Task NoKeyEverAppearsInTheLogs()
    {
        var key = await GenerateAsync("""{"user_id":"quiet"}""");
        using (var user = Gateway.CreateClient(key))
        {
            (await user.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()))).Dispose();
            (await user.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)))).Dispose();
        }
        using (var wrong = Gateway.CreateClient(key + "x"))
        {
            (await wrong.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()))).Dispose();
        }
        using (var admin = Gateway.CreateClient(TestKeys.MasterKey))
        {
            (await admin.PostAsync("/key/delete", JsonContent.Create(new { keys = new[] { key } }))).Dispose();
        }

        var calls = Gateway.Logs.Category("Onyx.CallLog").Where(r => r.EventId == 3001).ToList();
        Assert.Equal(2, calls.Count);
        Assert.All(calls, c => Assert.Equal("quiet", c["userId"]));
        Assert.All(calls, c => Assert.Equal($"sk-...{key[^4..]}", c["keyName"]));
        var text = string.Join('\n', Gateway.Logs.Records.Select(r =>
            r.Message + " " + string.Join(' ', r.Fields.Values) + " " + r.Exception));
        Assert.DoesNotContain(key, text);
        Assert.DoesNotContain(key[3..^4], text);
        Assert.DoesNotContain(TestKeys.MasterKey, text);
        Assert.DoesNotContain(GatewayHost.TogetherKey, text);
    }

    private async Task<string> GenerateAsync(string body)
    {
        using var admin = Gateway.CreateClient(TestKeys.MasterKey);
        using var response = await admin.PostAsync("/key/generate", GatewayHost.Json(body));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (string)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["key"]!;
    }
}
