using Onyx.Gateway.Audit;
using Onyx.Gateway.Model;
using Onyx.Gateway.Tests.TestHost;
using Onyx.Gateway.Ui;

namespace Onyx.Gateway.Tests.Ui;

/// <summary>The Overview's success metrics, worked out from a window of audit records whose every figure is known.</summary>
public sealed class TrafficStatsTests
{
    private const string Primary = "together_ai/deepseek-ai/DeepSeek-V3";
    private const string Fallback = "ollama/mistral:7b-instruct";

    private static readonly AttemptStep PrimaryAnswered = new(Primary, "success", null, 200, 40);
    private static readonly AttemptStep PrimaryFailed = new(Primary, "failed", "http_503", 503, 5);
    private static readonly AttemptStep FallbackAnswered = new(Fallback, "success", null, 200, 120);
    private static readonly AttemptStep FallbackFailed = new(Fallback, "failed", "timeout", null, 10_000);

    [Fact]
    public void CountsTheStorysMetricsOverTheRequestsThatReachedADeployment()
    {
        List<AuditRecord> records =
        [
            // 16 answered by the primary, first tokens at 10, 20 … 160 ms.
            .. Enumerable.Range(1, 16).Select(i => Record(200, success: true, fallback: false, [PrimaryAnswered], ttftMs: i * 10)),
            // One answered by the fallback after the primary's 503, its first token late.
            Record(200, success: true, fallback: true, [PrimaryFailed, FallbackAnswered], ttftMs: 900),
            // One cut on the primary mid-stream and resumed on the fallback.
            Record(200, success: true, fallback: true, [PrimaryFailed, FallbackAnswered], ttftMs: 50,
                resumed: [new ResumedAt(Primary, Fallback, 120, "stream_cut", "continuation")]),
            // One refused before routing (rate limit), one that every deployment failed.
            Record(429, success: false, fallback: false, [], ttftMs: null),
            Record(502, success: false, fallback: true, [PrimaryFailed, FallbackFailed], ttftMs: null),
        ];

        var stats = TrafficStats.From(records, TimeSpan.FromHours(1));

        Assert.Equal(20, stats.Requests);
        Assert.Equal(19, stats.Routed);
        Assert.Equal(16.0 / 19, stats.PrimarySuccessRate);
        Assert.Equal(3.0 / 19, stats.FallbackRate);
        Assert.Equal(2.0 / 20, stats.ErrorRate); // the refusal counts as an error …
        Assert.Equal(19.0 / 20, stats.Availability); // … but only the 502 against availability
        Assert.Equal(900, stats.FirstTokenP95Ms); // nearest rank: the 18th of 18 successful streams
        Assert.Equal(50, stats.StreamTokensPerSecond); // every stream: 5 tokens in the 100 ms after its first
        Assert.Equal(20.0 / 60, stats.RequestsPerMinute);
        Assert.Equal(1, stats.Resumes);
        Assert.Equal(18 * 15, stats.Tokens);

        var alias = Assert.Single(stats.Aliases);
        Assert.Equal(new AliasTraffic("manus-primary", 20, 2, 3, 1, 18 * 15, 19.0 / 20), alias);
        Assert.Equal(
            [
                new DeploymentTraffic(Fallback, Calls: 3, Succeeded: 2, Failed: 1, Skipped: 0, Answered: 2, Resumes: 1, Tokens: 2 * 15, 2.0 / 3),
                new DeploymentTraffic(Primary, Calls: 19, Succeeded: 16, Failed: 3, Skipped: 0, Answered: 16, Resumes: 0, Tokens: 16 * 15, 16.0 / 19),
            ],
            stats.Deployments);
    }

    [Fact]
    public void HoldsACutStreamAgainstAvailabilityButNotAClientsMistake()
    {
        List<AuditRecord> records =
        [
            Record(200, success: false, fallback: false, [PrimaryAnswered], ttftMs: 30), // answered, then cut: the client got no whole answer
            Record(400, success: false, fallback: false, [new AttemptStep(Primary, "client_error", "http_400", 400, 8)], ttftMs: null),
            Record(200, success: true, fallback: false, [PrimaryAnswered], ttftMs: 30),
        ];

        var stats = TrafficStats.From(records, TimeSpan.FromMinutes(5));

        Assert.Equal(2.0 / 3, stats.Availability!.Value, precision: 12);
        Assert.Equal(2.0 / 3, stats.ErrorRate);
        Assert.Equal(1.0 / 3, stats.PrimarySuccessRate);
        Assert.Equal(30, stats.FirstTokenP95Ms); // only successful streams count
        var primary = Assert.Single(stats.Deployments);
        Assert.Equal(3, primary.Calls); // the 400 was a call the deployment took, not one it failed
        Assert.Equal(0, primary.Failed);
    }

    [Fact]
    public void ShowsNoRatesForAnEmptyWindow()
    {
        var stats = TrafficStats.From([], TimeSpan.FromHours(24));

        Assert.Null(stats.PrimarySuccessRate);
        Assert.Null(stats.FallbackRate);
        Assert.Null(stats.ErrorRate);
        Assert.Null(stats.Availability);
        Assert.Null(stats.FirstTokenP95Ms);
        Assert.Equal(0, stats.RequestsPerMinute);
    }

    private static AuditRecord Record(int status, bool success, bool fallback, IReadOnlyList<AttemptStep> attempts, double? ttftMs,
        IReadOnlyList<ResumedAt>? resumed = null) => new()
        {
            AuditId = Guid.CreateVersion7().ToString(),
            Timestamp = TestClock.Start,
            RequestId = Guid.NewGuid().ToString("N"),
            Replica = "replica-a",
            Alias = "manus-primary",
            Stream = ttftMs is not null,
            Status = status,
            Success = success,
            Deployment = attempts.Count == 0 ? null : attempts[^1].Deployment,
            Fallback = fallback,
            Attempts = attempts,
            Tokens = success ? new TokenCounts(10, 5, 15, Estimated: false) : new TokenCounts(0, 0, 0, Estimated: false),
            LatencyMs = (ttftMs ?? 0) + 100,
            TtftMs = ttftMs,
            Resumed = resumed,
        };
}
