using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.RateLimiting;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;
using StackExchange.Redis;

namespace Onyx.Gateway.Tests.Spend;

/// <summary>
/// LiteLLM's key budgets (<c>max_budget</c>, <c>model_max_budget</c>, <c>soft_budget</c>) enforced exactly by replicas
/// sharing one real redis-server: a key over its budget gets LiteLLM's 400 <c>budget_exceeded</c> before any provider is
/// called, and a burst passes the budget by at most one call. Also <c>/key/update</c> and <c>/key/list</c>.
/// </summary>
public sealed class BudgetTests : ReplicasOnOneRedis
{
    private const string MasterKey = "sk-master-budget-4c1e77";

    /// <summary>12 prompt tokens at $1.25/M and 4 completion tokens at $2.50/M (the fake's usage report).</summary>
    private static readonly decimal CallCost = 12 * 1.25m / 1_000_000 + FakeBehavior.DefaultTokens.Count * 2.5m / 1_000_000;

    protected override Dictionary<string, string?> ReplicaSettings => new()
    {
        ["LITELLM_MASTER_KEY"] = MasterKey,
        ["model_list:0:litellm_params:input_cost_per_million_tokens"] = "1.25",
        ["model_list:0:litellm_params:output_cost_per_million_tokens"] = "2.5",
        ["model_list:1:litellm_params:input_cost_per_million_tokens"] = "1.25",
        ["model_list:1:litellm_params:output_cost_per_million_tokens"] = "2.5",
        ["litellm_settings:rate_limit:rpm"] = "1000",
        // A request whose Redis answer misses the bound is decided by its replica alone; on two busy cores that
        // happens, so exactness across replicas is tested with a bound no answer misses.
        ["Onyx:RateLimits:RedisTimeout"] = "00:00:10",
        ["Onyx:Auth:RedisTimeout"] = "00:00:10",
    };

    [Fact]
    public async Task FiftyParallelRequestsFromOneKeyOnTwoReplicasPassItsBudgetByAtMostOneCall()
    {
        var a = await StartReplicaAsync();
        var b = await StartReplicaAsync();
        // Worth five and a half calls: five leave it under budget, the sixth passes it, a seventh is refused.
        var key = await GenerateAsync(a, $$"""{"user_id":"burst","max_budget":{{Usd(5.5m * CallCost)}}}""");
        foreach (var fake in new[] { a.Primary, b.Primary })
        {
            // Long enough that the burst's calls overlap.
            fake.TokenDelay = TimeSpan.FromMilliseconds(20);
        }
        using var onA = a.CreateClient(key);
        using var onB = b.CreateClient(key);
        var body = GatewayHost.ChatBody(extra: ""","max_tokens":4""");

        var burst = await Task.WhenAll(Enumerable.Range(0, 50).Select(async i =>
        {
            using var response = await (i % 2 == 0 ? onA : onB).PostAsync("/v1/chat/completions", GatewayHost.Json(body));
            return (response.StatusCode, Body: JsonNode.Parse(await response.Content.ReadAsStringAsync())!);
        }));

        var served = burst.Count(r => r.StatusCode == HttpStatusCode.OK);
        Assert.InRange(served, 1, 6);
        Assert.All(burst.Where(r => r.StatusCode != HttpStatusCode.OK), r => AssertBudgetExceeded(r.StatusCode, r.Body["error"]!));
        Assert.Equal(served, a.Primary.Calls + b.Primary.Calls);
        // What the key is charged is what its served calls cost, as their call records say.
        Assert.Equal(served * CallCost, await SpendAsync(onA, served * CallCost));
        Assert.Equal(served * CallCost, CallCosts(a, b));

        // Then one request at a time until the budget refuses: six calls in all, the sixth the one-call overshoot.
        var more = 0;
        for (var i = 0; i < 10; i++)
        {
            using var response = await (i % 2 == 0 ? onA : onB).PostAsync("/v1/chat/completions", GatewayHost.Json(body));
            if (response.StatusCode != HttpStatusCode.OK)
            {
                AssertBudgetExceeded(response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!);
                break;
            }
            more++;
        }
        Assert.Equal(6, served + more);
        Assert.Equal(6 * CallCost, await SpendAsync(onA, 6 * CallCost));
        Assert.Equal(6, a.Primary.Calls + b.Primary.Calls);
        // Nothing is left reserved once every call has settled.
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        Assert.Equal(0, (long)await redis.GetDatabase().HashGetAsync($"onyx:rl:{{burst}}:budget:{Hash(key)}", "reserved"));
    }

    [Fact]
    public async Task AKeyOverItsBudgetGetsLiteLlmsBudgetExceededBeforeAnyProviderIsCalled()
    {
        var gateway = await StartReplicaAsync();
        var key = await GenerateAsync(gateway, $$"""{"user_id":"thrifty","max_budget":{{Usd(CallCost)}}}""");
        using var client = gateway.CreateClient(key);
        using (var first = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }

        using var refused = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));

        var error = await OpenAiResponses.ErrorOf(refused, HttpStatusCode.BadRequest);
        AssertBudgetExceeded(refused.StatusCode, error);
        Assert.StartsWith($"Budget has been exceeded! Current cost: {Usd(CallCost)}, Max budget: {Usd(CallCost)}", (string?)error["message"]);
        Assert.Null(refused.Headers.RetryAfter);
        Assert.Equal(1, gateway.Primary.Calls);
        var logged = await gateway.Logs.WaitForAsync(r => r.EventId == 5010, TimeSpan.FromSeconds(5));
        Assert.Equal("budget", logged["Limit"]);
        Assert.Equal("thrifty", logged["UserId"]);
    }

    [Fact]
    public async Task AModelBudgetRefusesOnlyItsAlias()
    {
        var gateway = await StartReplicaAsync();
        var key = await GenerateAsync(gateway, """{"user_id":"split","model_max_budget":{"manus-fallback":{"budget_limit":""" + Usd(CallCost / 2) + ""","time_period":"1d"}}}""");
        using var client = gateway.CreateClient(key);

        using (var first = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody("manus-fallback"))))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }
        using (var refused = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody("manus-fallback"))))
        {
            var error = await OpenAiResponses.ErrorOf(refused, HttpStatusCode.BadRequest);
            AssertBudgetExceeded(refused.StatusCode, error);
            Assert.Contains("Model=manus-fallback", (string?)error["message"]);
        }
        using (var other = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody("manus-primary"))))
        {
            Assert.Equal(HttpStatusCode.OK, other.StatusCode);
        }

        var info = await InfoAsync(client);
        Assert.Equal(2 * CallCost, (decimal)info["spend"]!);
        Assert.Equal(CallCost, (decimal)info["model_spend"]!["manus-fallback"]!);
        Assert.Equal(1, gateway.Fallback.Calls);
    }

    [Fact]
    public async Task ASoftBudgetIsLoggedOnceWhenTheKeysSpendCrossesIt()
    {
        var a = await StartReplicaAsync();
        var b = await StartReplicaAsync();
        var key = await GenerateAsync(a, $$"""{"user_id":"soft","soft_budget":{{Usd(1.5m * CallCost)}}}""");
        using var onA = a.CreateClient(key);
        using var onB = b.CreateClient(key);

        for (var i = 0; i < 4; i++)
        {
            using var response = await (i % 2 == 0 ? onA : onB).PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        await SpendAsync(onA, 4 * CallCost);
        var crossings = a.Logs.Records.Concat(b.Logs.Records).Where(r => r.EventId == 5011).ToList();
        var crossing = Assert.Single(crossings);
        Assert.Equal(2 * CallCost, crossing["SpendUsd"]);
        Assert.Equal(Hash(key)[..8], crossing["TokenPrefix"]);
    }

    [Fact]
    public async Task KeyUpdateChangesABudgetOnEveryReplicaAndRefusesWhatItCannotDo()
    {
        var a = await StartReplicaAsync();
        var b = await StartReplicaAsync();
        var key = await GenerateAsync(a, """{"user_id":"updated","key_alias":"ci"}""");
        using var onB = b.CreateClient(key);
        using (var before = await onB.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }
        using var admin = a.CreateClient(MasterKey);

        using (var updated = await admin.PostAsync("/key/update", GatewayHost.Json($$"""{"key":"{{key}}","max_budget":0,"budget_duration":"1d"}""")))
        {
            Assert.Equal(HttpStatusCode.OK, updated.StatusCode);
            var info = JsonNode.Parse(await updated.Content.ReadAsStringAsync())!["info"]!;
            Assert.Equal(0m, (decimal)info["max_budget"]!);
            Assert.Equal("1d", (string?)info["budget_duration"]);
            Assert.Equal("ci", (string?)info["key_alias"]);
            Assert.Equal(CallCost, (decimal)info["spend"]!);
            Assert.Equal(DateTimeOffset.UtcNow.UtcDateTime.Date.AddDays(1), ((DateTimeOffset)info["budget_reset_at"]!).UtcDateTime);
        }
        // Replica b had the key cached; the change reaches it through Redis pub/sub.
        await b.Logs.WaitForAsync(r => r.EventId == 6005, TimeSpan.FromSeconds(10));
        using (var refused = await onB.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            AssertBudgetExceeded(refused.StatusCode, await OpenAiResponses.ErrorOf(refused, HttpStatusCode.BadRequest));
        }

        // null removes the budget.
        var changes = b.Logs.Records.Count(r => r.EventId == 6005);
        using (var cleared = await admin.PostAsync("/key/update", GatewayHost.Json($$"""{"key":"{{Hash(key)}}","max_budget":null}""")))
        {
            Assert.Equal(HttpStatusCode.OK, cleared.StatusCode);
        }
        await b.Logs.WaitForAsync(_ => b.Logs.Records.Count(r => r.EventId == 6005) > changes, TimeSpan.FromSeconds(10));
        using (var again = await onB.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        }

        foreach (var (body, param) in new[]
        {
            ($$"""{"key":"{{key}}","team_id":"t1"}""", "team_id"),
            ($$"""{"key":"{{key}}","user_id":"someone-else"}""", "user_id"),
            ($$"""{"key":"{{key}}","budget_duration":"1w"}""", "budget_duration"),
            ($$"""{"key":"{{key}}","model_max_budget":{"manus-primary":{"budget_limit":1,"rpm_limit":5}""" + "}}", "model_max_budget"),
            ($$"""{"key":"{{key}}","model_max_budget":{"gpt-9":{"budget_limit":1}""" + "}}", "model_max_budget"),
            ("""{"max_budget":1}""", "key"),
        })
        {
            using var response = await admin.PostAsync("/key/update", GatewayHost.Json(body));
            var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.BadRequest);
            Assert.Equal(param, (string?)error["param"]);
            Assert.Contains(param, (string?)error["message"]);
        }
        using var user = b.CreateClient(key);
        using var notMaster = await user.PostAsync("/key/update", GatewayHost.Json($$"""{"key":"{{key}}","max_budget":100}"""));
        Assert.Equal(HttpStatusCode.Forbidden, notMaster.StatusCode);
    }

    [Fact]
    public async Task KeyListNamesKeysByTheirHashAndShowsTheirBudgetsAndSpend()
    {
        var gateway = await StartReplicaAsync();
        var first = await GenerateAsync(gateway, """{"user_id":"lister","key_alias":"one","max_budget":2.5,"budget_duration":"30d"}""");
        var second = await GenerateAsync(gateway, """{"user_id":"lister","key_alias":"two"}""");
        var other = await GenerateAsync(gateway, """{"user_id":"someone"}""");
        using (var call = await gateway.CreateClient(first).PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            Assert.Equal(HttpStatusCode.OK, call.StatusCode);
        }
        using var admin = gateway.CreateClient(MasterKey);

        var tokens = JsonNode.Parse(await admin.GetStringAsync("/key/list"))!;
        Assert.Equal(3, (int)tokens["total_count"]!);
        Assert.Equal(1, (int)tokens["current_page"]!);
        Assert.Equal(new[] { Hash(first), Hash(second), Hash(other) }.Order(), tokens["keys"]!.AsArray().Select(k => (string)k!).Order());

        var listed = JsonNode.Parse(await admin.GetStringAsync("/key/list?user_id=lister&return_full_object=true&size=1&page=1"))!;
        Assert.Equal(2, (int)listed["total_count"]!);
        Assert.Equal(2, (int)listed["total_pages"]!);
        var record = Assert.Single(listed["keys"]!.AsArray())!;
        Assert.Equal(Hash(first), (string?)record["token"]);
        Assert.Equal("one", (string?)record["key_alias"]);
        Assert.Equal(2.5m, (decimal)record["max_budget"]!);
        Assert.Equal("30d", (string?)record["budget_duration"]);
        Assert.Equal(CallCost, (decimal)record["spend"]!);
        Assert.NotNull(record["budget_reset_at"]);
        var text = listed.ToJsonString() + tokens.ToJsonString();
        foreach (var key in new[] { first, second, other })
        {
            Assert.DoesNotContain(key, text);
        }

        using var unknown = await admin.GetAsync("/key/list?team_id=t1");
        Assert.Equal("team_id", (string?)(await OpenAiResponses.ErrorOf(unknown, HttpStatusCode.BadRequest))["param"]);
        using var notMaster = await gateway.CreateClient(first).GetAsync("/key/list");
        Assert.Equal(HttpStatusCode.Forbidden, notMaster.StatusCode);
    }

    [Fact]
    public async Task ACostRedisCouldNotTakeIsSettledLaterAndCountedOnce()
    {
        var gateway = await StartReplicaAsync();
        var refusedKey = await GenerateAsync(gateway, """{"user_id":"refused-spend"}""");
        var otherKey = await GenerateAsync(gateway, """{"user_id":"other-spend"}""");
        // Redis refuses every script that touches this key's budget (a value of the wrong type where it is kept).
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        var budget = $"onyx:rl:{{refused-spend}}:budget:{Hash(refusedKey)}";
        await redis.GetDatabase().StringSetAsync(budget, "in the way");
        using var refused = gateway.CreateClient(refusedKey);
        using var other = gateway.CreateClient(otherKey);

        var calls = await Task.WhenAll(new[] { refused, other }.Select(c => c.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()))));
        Assert.All(calls, c => Assert.Equal(HttpStatusCode.OK, c.StatusCode));
        await gateway.Logs.WaitForAsync(r => r.EventId == 5013, TimeSpan.FromSeconds(10));
        Assert.Equal(CallCost, await SpendAsync(other, CallCost));

        // Once Redis takes it, the cost is counted — once, however often it was tried.
        await redis.GetDatabase().KeyDeleteAsync(budget);
        Assert.Equal(CallCost, await SpendAsync(refused, CallCost));
        Assert.Equal(CallCost, await SpendAsync(other, CallCost));
        var later = gateway.Logs.Records.Count(r => r.EventId == 5013);
        using (var next = await other.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        }
        Assert.Equal(CallCost, await SpendAsync(refused, CallCost));
        Assert.Equal(2 * CallCost, await SpendAsync(other, 2 * CallCost));
        Assert.Equal(later, gateway.Logs.Records.Count(r => r.EventId == 5013));
    }

    [Fact]
    public async Task ACostWrittenTwiceCountsOnce()
    {
        // A settlement whose first write landed but whose answer was lost is written again: it must count once.
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        var store = new RedisUsageStore(redis, Options.Create(new OnyxOptions()));
        var user = LimitSubject.UserKeyOf("twice");
        var settlement = new Settlement("a1b2", "replica:call-1", 2500, null, null, 0, 0, -1, 1_000);
        var other = settlement with { CallId = "replica:call-2", Cost = 100 };

        var first = await store.RecordAsync([new([], "replica:call-1", 0, settlement, user)], CancellationToken.None);
        var retried = await store.RecordAsync([new([], "replica:call-1", 0, settlement, user), new([], "replica:call-2", 0, other, user)], CancellationToken.None);

        Assert.True(first[0].Applied);
        Assert.False(retried[0].Applied);
        Assert.True(retried[1].Applied);
        Assert.Equal(2600, (await store.ReadBudgetAsync(user, "a1b2", CancellationToken.None)).Spend);
    }

    [Fact]
    public async Task AReservationWhoseReplicaStoppedRenewingItIsGivenBack()
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        var options = new OnyxOptions();
        options.RateLimits.ParallelLease = TimeSpan.FromSeconds(3);
        var store = new RedisUsageStore(redis, Options.Create(options));
        var user = LimitSubject.UserKeyOf("orphan");
        var claim = new BudgetClaim("c3d4", MaxBudget: 600, KeyNextReset: 0, "manus-primary", null, 0, Estimate: 600, Now: 1_000);

        Assert.True((await store.AdmitAsync(new AdmissionRequest(user, [], "dead-replica:1", claim), CancellationToken.None)).Admitted);
        var refused = await store.AdmitAsync(new AdmissionRequest(user, [], "live-replica:1", claim), CancellationToken.None);
        Assert.False(refused.Admitted);
        Assert.Equal(LimitKind.Budget, refused.RefusedLimit);
        Assert.Equal(600, refused.Budget!.Value.Reserved);

        // The first replica died: its reservation was last renewed longer than a lease ago.
        var database = redis.GetDatabase();
        var reservations = RedisUsageStore.BudgetKey(user, "c3d4") + ":res";
        await database.SortedSetAddAsync(reservations, claim.ReservationFor("dead-replica:1"), 1);

        var admitted = await store.AdmitAsync(new AdmissionRequest(user, [], "live-replica:2", claim), CancellationToken.None);
        Assert.True(admitted.Admitted);
        Assert.Equal(600, admitted.Budget!.Value.Reserved);
        Assert.Equal([claim.ReservationFor("live-replica:2")], (await database.SortedSetRangeByRankAsync(reservations)).Select(r => r.ToString()));
    }

    private static void AssertBudgetExceeded(HttpStatusCode status, JsonNode error)
    {
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("budget_exceeded", (string?)error["type"]);
        Assert.Equal("400", (string?)error["code"]);
        Assert.Null(error["param"]);
        Assert.StartsWith("Budget has been exceeded!", (string?)error["message"]);
    }

    /// <summary>
    /// The key's spend as <c>/key/info</c> shows it, once it is <paramref name="expected"/> (spend lands in Redis just
    /// after a call ends: read again on each write).
    /// </summary>
    private Task<decimal> SpendAsync(HttpClient client, decimal expected) =>
        RedisWrites.WaitForAsync(Redis.ConnectionString, async () => (decimal)(await InfoAsync(client))["spend"]!, spend => spend == expected,
            TimeSpan.FromSeconds(10), $"a spend of {expected} USD", spend => $"{spend} USD");

    private static async Task<JsonNode> InfoAsync(HttpClient client) => JsonNode.Parse(await client.GetStringAsync("/key/info"))!["info"]!;

    private static decimal CallCosts(params GatewayHost[] replicas) => replicas
        .SelectMany(r => r.Logs.Records)
        .Where(r => r.Category == "Onyx.CallLog" && r.EventId == 3001 && (int?)r["Status"] == 200)
        .Sum(r => (decimal)r["costUsd"]!);

    private static string Usd(decimal amount) => amount.ToString(CultureInfo.InvariantCulture);

    private static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    private static async Task<string> GenerateAsync(GatewayHost gateway, string body)
    {
        using var admin = gateway.CreateClient(MasterKey);
        using var response = await admin.PostAsync("/key/generate", GatewayHost.Json(body));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        return (string)JsonNode.Parse(text)!["key"]!;
    }
}
