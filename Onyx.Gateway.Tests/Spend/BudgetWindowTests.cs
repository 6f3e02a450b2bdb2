using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Spend;

/// <summary>
/// A key's budget window, on a single gateway (budgets in memory) with a fake clock: it resets on LiteLLM's schedule
/// (<c>budget_reset_at</c>), and its soft budget is reported once per crossing.
/// </summary>
public sealed class BudgetWindowTests : GatewayTest
{
    private const string MasterKey = "sk-master-window-93ab1d";

    private static readonly decimal CallCost = 12 * 1.25m / 1_000_000 + FakeBehavior.DefaultTokens.Count * 2.5m / 1_000_000;

    // Not TestClock.Start: 20 minutes into an hour, so a "1h" window that ended an hour after the key was made (09:20)
    // rather than on the hour (09:00, as LiteLLM's do) would show.
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-11-26T08:20:00Z", CultureInfo.InvariantCulture));

    protected override Dictionary<string, string?> Settings => new()
    {
        ["LITELLM_MASTER_KEY"] = MasterKey,
        ["model_list:0:litellm_params:input_cost_per_million_tokens"] = "1.25",
        ["model_list:0:litellm_params:output_cost_per_million_tokens"] = "2.5",
    };

    protected override Action<IServiceCollection> Services => services => services.AddSingleton<TimeProvider>(_time);

    [Fact]
    public async Task TheBudgetStartsAgainOnScheduleAndTheSoftBudgetIsReportedOncePerCrossing()
    {
        using var admin = Gateway.CreateClient(MasterKey);
        using var generated = await admin.PostAsync("/key/generate", GatewayHost.Json(
            $$"""{"user_id":"hourly","max_budget":{{Usd(2.5m * CallCost)}},"budget_duration":"1h","soft_budget":{{Usd(1.2m * CallCost)}}}"""));
        Assert.Equal(HttpStatusCode.OK, generated.StatusCode);
        using var client = Gateway.CreateClient((string)JsonNode.Parse(await generated.Content.ReadAsStringAsync())!["key"]!);

        // Three calls: the second passes the soft budget (reported, once), the third the budget; the fourth is refused.
        await SendAsync(client, HttpStatusCode.OK);
        Assert.DoesNotContain(Gateway.Logs.Records, r => r.EventId == 5011);
        await SendAsync(client, HttpStatusCode.OK);
        await SendAsync(client, HttpStatusCode.OK);
        Assert.Single(Gateway.Logs.Records, r => r.EventId == 5011);
        await SendAsync(client, HttpStatusCode.BadRequest);
        var info = await InfoAsync(client);
        Assert.Equal(3 * CallCost, (decimal)info["spend"]!);
        // "1h" windows end on the hour, as LiteLLM's do.
        Assert.Equal(DateTimeOffset.Parse("2026-11-26T09:00:00Z", CultureInfo.InvariantCulture), (DateTimeOffset)info["budget_reset_at"]!);

        _time.Advance(TimeSpan.FromMinutes(40) - TimeSpan.FromMilliseconds(1));
        await SendAsync(client, HttpStatusCode.BadRequest);
        _time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(0m, (decimal)(await InfoAsync(client))["spend"]!);

        await SendAsync(client, HttpStatusCode.OK);
        info = await InfoAsync(client);
        Assert.Equal(CallCost, (decimal)info["spend"]!);
        Assert.Equal(DateTimeOffset.Parse("2026-11-26T10:00:00Z", CultureInfo.InvariantCulture), (DateTimeOffset)info["budget_reset_at"]!);
        await SendAsync(client, HttpStatusCode.OK);
        await SendAsync(client, HttpStatusCode.OK);
        // A new window, a new crossing.
        Assert.Equal(2, Gateway.Logs.Records.Count(r => r.EventId == 5011));
        await SendAsync(client, HttpStatusCode.BadRequest);
        Assert.Equal(6, Gateway.Primary.Calls);
    }

    [Theory]
    [InlineData("30s", "2026-11-26T08:20:17Z", "2026-11-26T08:20:30Z")]
    [InlineData("15m", "2026-11-26T08:20:17Z", "2026-11-26T08:30:00Z")]
    [InlineData("5h", "2026-11-26T23:20:17Z", "2026-11-27T01:00:00Z")]
    [InlineData("1d", "2026-11-26T08:20:17Z", "2026-11-27T00:00:00Z")]
    [InlineData("7d", "2026-11-26T08:20:17Z", "2026-11-30T00:00:00Z")]
    [InlineData("7d", "2026-11-30T08:20:17Z", "2026-12-07T00:00:00Z")]
    [InlineData("30d", "2026-12-26T08:20:17Z", "2027-01-01T00:00:00Z")]
    [InlineData("3d", "2026-11-26T08:20:17Z", "2026-11-29T00:00:00Z")]
    public void BudgetWindowsEndOnLiteLlmsRoundTimes(string duration, string now, string resets) =>
        Assert.Equal(DateTimeOffset.Parse(resets, CultureInfo.InvariantCulture),
            Onyx.Gateway.Auth.BudgetDurations.NextReset(duration, DateTimeOffset.Parse(now, CultureInfo.InvariantCulture)));

    private static async Task SendAsync(HttpClient client, HttpStatusCode expected)
    {
        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        if (expected == HttpStatusCode.OK)
        {
            Assert.Equal(expected, response.StatusCode);
            return;
        }
        Assert.Equal("budget_exceeded", (string?)(await OpenAiResponses.ErrorOf(response, expected))["type"]);
    }

    private static async Task<JsonNode> InfoAsync(HttpClient client) => JsonNode.Parse(await client.GetStringAsync("/key/info"))!["info"]!;

    private static string Usd(decimal amount) => amount.ToString(CultureInfo.InvariantCulture);
}
