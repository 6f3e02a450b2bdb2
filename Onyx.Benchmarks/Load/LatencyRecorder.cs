using System.Text.Json.Serialization;
using HdrHistogram;

namespace Onyx.Benchmarks.Load;

/// <summary>What one target (direct or gateway) did in a scenario: latencies in microseconds, counts, CPU.</summary>
internal sealed class LatencyRecorder(string target)
{
    /// <summary>Values are microseconds; five minutes is the longest a request may take.</summary>
    private const long HighestMicroseconds = 5L * 60 * 1_000_000;
    private readonly Lock _gate = new();

    public string Target { get; } = target;

    public LongHistogram TimeToFirstToken { get; } = new(HighestMicroseconds, 3);

    public LongHistogram Total { get; } = new(HighestMicroseconds, 3);

    public long Requests { get; private set; }

    public long Errors { get; private set; }

    public long Stalls { get; private set; }

    /// <summary>Answers refused with HTTP 429 (also counted in <see cref="Errors"/>).</summary>
    public long Refused { get; private set; }

    /// <summary>Successful answers that carried the limiter's <c>x-ratelimit-remaining-requests</c> header.</summary>
    public long RateLimitHeaders { get; private set; }

    public string? FirstError { get; private set; }

    public TimeSpan Wall { get; set; }

    public TimeSpan GatewayCpu { get; set; }

    /// <summary>CPU time of the gateway's Redis (if it has one) during this target's slices.</summary>
    public TimeSpan RedisCpu { get; set; }

    public void Record(TimeSpan timeToFirstToken, TimeSpan total, bool stalled, bool rateLimitHeaders)
    {
        lock (_gate)
        {
            Requests++;
            if (rateLimitHeaders)
            {
                RateLimitHeaders++;
            }
            TimeToFirstToken.RecordValue(Microseconds(timeToFirstToken));
            Total.RecordValue(Microseconds(total));
            if (stalled)
            {
                Stalls++;
            }
        }
    }

    public void Error(string what, bool refused = false)
    {
        lock (_gate)
        {
            Errors++;
            if (refused)
            {
                Refused++;
            }
            FirstError ??= what;
        }
    }

    public TargetSummary Summarize() => new(
        Target,
        Requests,
        Errors,
        Stalls,
        Wall.TotalSeconds > 0 ? Requests / Wall.TotalSeconds : 0,
        Ms(TimeToFirstToken, 50), Ms(TimeToFirstToken, 90), Ms(TimeToFirstToken, 99),
        Ms(Total, 50), Ms(Total, 99),
        Wall.TotalSeconds > 0 ? 100 * GatewayCpu.TotalSeconds / Wall.TotalSeconds : 0,
        FirstError,
        Refused,
        RateLimitHeaders,
        Wall.TotalSeconds > 0 ? 100 * RedisCpu.TotalSeconds / Wall.TotalSeconds : 0);

    private static long Microseconds(TimeSpan span) => Math.Clamp((long)(span.Ticks / 10.0), 1, HighestMicroseconds);

    private static double Ms(LongHistogram histogram, double percentile) =>
        histogram.TotalCount == 0 ? double.NaN : histogram.GetValueAtPercentile(percentile) / 1000.0;
}

/// <summary>
/// One target's figures; milliseconds, requests per second, gateway and Redis CPU as % of one core. Refused: 429s
/// (part of the errors); RateLimitHeaders: successful answers with the limiter's headers.
/// </summary>
internal sealed record TargetSummary(
    string Target, long Requests, long Errors, long Stalls, double Throughput,
    double TtftP50, double TtftP90, double TtftP99, double TotalP50, double TotalP99,
    double GatewayCpuPercent, string? FirstError, long Refused, long RateLimitHeaders, double RedisCpuPercent)
{
    /// <summary>The gateway's CPU time per answered request, in microseconds (meaningful for the gateway target).</summary>
    [JsonIgnore]
    public double GatewayCpuMicrosecondsPerRequest => Throughput > 0 ? GatewayCpuPercent * 10_000 / Throughput : double.NaN;

    /// <summary>Redis's CPU time per answered request, in microseconds.</summary>
    [JsonIgnore]
    public double RedisCpuMicrosecondsPerRequest => Throughput > 0 ? RedisCpuPercent * 10_000 / Throughput : double.NaN;
}
