using System.Net;
using System.Text.Json.Nodes;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Routing;

/// <summary>
/// The gateway's one promise, tried the way an independent check tried it: a primary that breaks mid-answer (cut,
/// stall, a chunk that is not JSON) and a fallback that behaves like a real model — it restarts its answer when asked
/// to continue, honours the prefill, refuses it, or is another model with other words. Whatever the pair, the client
/// receives the exact whole answer or a clean error; the assertions read the bytes the client got.
/// </summary>
public sealed class AnswerIntegrityTests
{
    /// <summary>Sixty words, as in the report that found spliced answers.</summary>
    public static readonly IReadOnlyList<string> Answer = ["w00", .. Words(" w", 1, 59)];

    /// <summary>Another model's answer to the same question.</summary>
    public static readonly IReadOnlyList<string> OtherAnswer = ["Certainly!", .. Words(" x", 0, 59)];

    private static readonly Dictionary<string, string?> QuickStall = new() { ["Onyx:Routing:StreamIdleTimeout"] = "00:00:00.500" };

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var fallback in new[] { "restarts", "honours", "refuses-prefill", "other-model-restarts", "other-model-honours" })
        {
            foreach (var fault in new[] { "cut", "stall", "malformed" })
            {
                data.Add(fallback, fault);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task AnOpenAiCompatibleFallbackGivesTheWholeAnswerOrACleanErrorNeverASplice(string fallback, string fault)
    {
        await using var gateway = await OpenAiFallbackGateway.StartAsync(continuation: "prefill", settings: QuickStall);
        gateway.Primary.Update(b => b with { Tokens = Answer, Fault = PrimaryFault(fault) });
        gateway.Fallback.Update(b => Behave(b, fallback));
        using var client = gateway.Gateway.CreateClient();

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        var outcome = AnswerIntegrity.Check(body, string.Concat(Answer));

        var expected = fallback.StartsWith("other-model", StringComparison.Ordinal) ? StreamOutcome.CleanError : StreamOutcome.Whole;
        Assert.True(expected == outcome, $"expected {expected}, got {outcome}: {body[Math.Max(0, body.Length - 600)..]}");
        // A refused prefill is asked again as a replay, on the same deployment, before anything else.
        Assert.Equal(fallback == "refuses-prefill" ? 2 : 1, gateway.Fallback.Calls);
    }

    [Theory]
    [InlineData("restarts", StreamOutcome.Whole)]
    [InlineData("honours", StreamOutcome.Whole)]
    [InlineData("refuses-prefill", StreamOutcome.Whole)]
    [InlineData("other-model-restarts", StreamOutcome.CleanError)]
    [InlineData("other-model-honours", StreamOutcome.CleanError)]
    public async Task TheStorysOllamaFallbackGivesTheWholeAnswerOrACleanError(string fallback, StreamOutcome expected)
    {
        await using var gateway = await GatewayHost.StartAsync(QuickStall);
        gateway.Primary.Update(b => b with { Tokens = Answer, Fault = FakeFault.DropAfter(5) });
        gateway.Fallback.Update(b => Behave(b, fallback));
        using var client = gateway.CreateClient();

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));

        Assert.Equal(expected, AnswerIntegrity.Check(await response.Content.ReadAsStringAsync(), string.Concat(Answer)));
    }

    [Theory]
    [InlineData("openai", "restarts", StreamOutcome.Whole)]
    [InlineData("openai", "honours", StreamOutcome.Whole)]
    [InlineData("openai", "other-model-restarts", StreamOutcome.CleanError)]
    [InlineData("together_ai", "honours", StreamOutcome.Whole)]
    [InlineData("together_ai", "restarts", StreamOutcome.Whole)]
    [InlineData("deepseek", "honours", StreamOutcome.Whole)]
    [InlineData("deepseek", "other-model-honours", StreamOutcome.CleanError)]
    public async Task EachProvidersDefaultWayOfContinuingIsChecked(string provider, string fallback, StreamOutcome expected)
    {
        await using var gateway = await OpenAiFallbackGateway.StartAsync(provider);
        gateway.Primary.Update(b => b with { Tokens = Answer, Fault = FakeFault.DropAfter(40) });
        gateway.Fallback.Update(b => Behave(b, fallback));
        using var client = gateway.Gateway.CreateClient();

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));

        Assert.Equal(expected, AnswerIntegrity.Check(await response.Content.ReadAsStringAsync(), string.Concat(Answer)));
        var last = gateway.Fallback.Requests[0].Json!["messages"]!.AsArray()[^1]!;
        switch (provider)
        {
            case "openai":
                // OpenAI's API does not continue a prefill: it is asked the question again.
                Assert.Equal("user", (string?)last["role"]);
                break;
            case "deepseek":
                Assert.Equal("assistant", (string?)last["role"]);
                Assert.True((bool?)last["prefix"]);
                break;
            default:
                Assert.Equal("assistant", (string?)last["role"]);
                Assert.Null(last["prefix"]);
                break;
        }
    }

    internal static FakeBehavior Behave(FakeBehavior behavior, string fallback) => fallback switch
    {
        "restarts" => behavior with { Tokens = Answer, Continuation = FakeContinuation.Restarts },
        "honours" => behavior with { Tokens = Answer, Continuation = FakeContinuation.Honours },
        "refuses-prefill" => behavior with { Tokens = Answer, Continuation = FakeContinuation.RefusesPrefill },
        "other-model-restarts" => behavior with { Tokens = OtherAnswer, Continuation = FakeContinuation.Restarts },
        "other-model-honours" => behavior with { Tokens = OtherAnswer, Continuation = FakeContinuation.Honours },
        _ => throw new ArgumentOutOfRangeException(nameof(fallback)),
    };

    /// <summary>The three mid-answer faults of the report: cut after 40 of 60 words, 20 words then silence, the 10th event not JSON.</summary>
    private static FakeFault PrimaryFault(string fault) => fault switch
    {
        "cut" => FakeFault.DropAfter(40),
        "stall" => FakeFault.StallAfter(20),
        "malformed" => FakeFault.MalformedAfter(8),
        _ => throw new ArgumentOutOfRangeException(nameof(fault)),
    };

    private static IEnumerable<string> Words(string prefix, int first, int count) =>
        Enumerable.Range(first, count).Select(i => prefix + i.ToString("00", System.Globalization.CultureInfo.InvariantCulture));
}
