using Onyx.Gateway.Audit;

namespace Onyx.Gateway.Ui;

/// <summary>
/// The story's success metrics, and traffic per alias and per deployment, worked out from audit records (which hold
/// every call's status, fallback, attempts, first-token time, latency, tokens and resumes, from every replica).
/// </summary>
/// <remarks>
/// Definitions, shown on the page too:
/// <list type="bullet">
/// <item>routed: a request that reached a deployment chain (not refused before it: 401/403/404/429, budget);</item>
/// <item>primary success rate: routed requests answered by the alias's own first choice, without fallback;</item>
/// <item>fallback activation rate: routed requests answered or attempted past the first deployment;</item>
/// <item>availability: requests that did not end in a failure of the gateway or its providers (a 5xx, or a stream cut
/// mid-answer); client errors and refusals do not count against it;</item>
/// <item>error rate: every request that did not succeed, refusals included (the story's "failed requests / total").</item>
/// </list>
/// </remarks>
internal sealed record TrafficStats
{
    public required int Requests { get; init; }
    public required int Routed { get; init; }
    public required int Succeeded { get; init; }
    public required int PrimarySucceeded { get; init; }
    public required int Fallbacks { get; init; }
    public required int ServiceFailures { get; init; }
    public required int Failed { get; init; }
    public required int Resumes { get; init; }
    public required long Tokens { get; init; }
    public required double? FirstTokenP95Ms { get; init; }
    /// <summary>Median of each successful stream's completion tokens over its time after the first token.</summary>
    public required double? StreamTokensPerSecond { get; init; }
    public required double RequestsPerMinute { get; init; }
    public required IReadOnlyList<AliasTraffic> Aliases { get; init; }
    public required IReadOnlyList<DeploymentTraffic> Deployments { get; init; }
    /// <summary>Replica id → its newest record's time in the window.</summary>
    public required IReadOnlyDictionary<string, DateTimeOffset> ReplicasSeen { get; init; }

    public double? PrimarySuccessRate => Ratio(PrimarySucceeded, Routed);
    public double? FallbackRate => Ratio(Fallbacks, Routed);
    public double? Availability => Requests == 0 ? null : 1 - (double)ServiceFailures / Requests;
    public double? ErrorRate => Ratio(Failed, Requests);

    public static TrafficStats From(IReadOnlyList<AuditRecord> records, TimeSpan window)
    {
        var ttfts = new List<double>();
        var speeds = new List<double>();
        var aliases = new Dictionary<string, AliasCounter>(StringComparer.Ordinal);
        var deployments = new Dictionary<string, DeploymentCounter>(StringComparer.Ordinal);
        var replicas = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
        int routed = 0, succeeded = 0, primary = 0, fallbacks = 0, serviceFailures = 0, failed = 0, resumes = 0;
        long tokens = 0;
        foreach (var record in records)
        {
            var wasRouted = record.Attempts.Count > 0;
            var serviceFailure = IsServiceFailure(record);
            var resumed = record.Resumed is { Count: > 0 };
            routed += wasRouted ? 1 : 0;
            succeeded += record.Success ? 1 : 0;
            primary += wasRouted && record.Success && !record.Fallback ? 1 : 0;
            fallbacks += wasRouted && record.Fallback ? 1 : 0;
            serviceFailures += serviceFailure ? 1 : 0;
            failed += record.Success ? 0 : 1;
            resumes += resumed ? 1 : 0;
            tokens += record.Tokens.Total;
            if (record.Success && record.Stream && record.TtftMs is { } ttft)
            {
                ttfts.Add(ttft);
                var streaming = (record.LatencyMs - ttft) / 1000;
                if (streaming > 0 && record.Tokens.Completion > 1)
                {
                    speeds.Add(record.Tokens.Completion / streaming);
                }
            }
            if (!replicas.TryGetValue(record.Replica, out var seen) || seen < record.Timestamp)
            {
                replicas[record.Replica] = record.Timestamp;
            }

            var alias = aliases.TryGetValue(record.Alias, out var a) ? a : aliases[record.Alias] = new AliasCounter();
            alias.Requests++;
            alias.ServiceFailures += serviceFailure ? 1 : 0;
            alias.Errors += record.Success ? 0 : 1;
            alias.Fallbacks += record.Fallback ? 1 : 0;
            alias.Resumes += resumed ? 1 : 0;
            alias.Tokens += record.Tokens.Total;

            foreach (var step in record.Attempts)
            {
                var deployment = deployments.TryGetValue(step.Deployment, out var d) ? d : deployments[step.Deployment] = new DeploymentCounter();
                switch (step.Outcome)
                {
                    case "skipped":
                        deployment.Skipped++;
                        break;
                    case "success":
                        deployment.Calls++;
                        deployment.Succeeded++;
                        break;
                    case "failed":
                        deployment.Calls++;
                        deployment.Failed++;
                        break;
                    default:
                        // The call ended on it with the call's own error (a client error the upstream returned, a client
                        // that left): a call the deployment took, not held against it.
                        deployment.Calls++;
                        break;
                }
            }
            if (record.Deployment is { } answered && record.Success && deployments.TryGetValue(answered, out var by))
            {
                by.Answered++;
                by.Tokens += record.Tokens.Total;
                by.Resumes += resumed ? 1 : 0;
            }
        }
        return new TrafficStats
        {
            Requests = records.Count,
            Routed = routed,
            Succeeded = succeeded,
            PrimarySucceeded = primary,
            Fallbacks = fallbacks,
            ServiceFailures = serviceFailures,
            Failed = failed,
            Resumes = resumes,
            Tokens = tokens,
            FirstTokenP95Ms = Percentile(ttfts, 0.95),
            StreamTokensPerSecond = Percentile(speeds, 0.5),
            RequestsPerMinute = records.Count / Math.Max(window.TotalMinutes, 1.0 / 60),
            Aliases = [.. aliases.OrderBy(a => a.Key, StringComparer.Ordinal).Select(a => a.Value.ToTraffic(a.Key))],
            Deployments = [.. deployments.OrderBy(d => d.Key, StringComparer.Ordinal).Select(d => d.Value.ToTraffic(d.Key))],
            ReplicasSeen = replicas,
        };
    }

    /// <summary>A failure of the gateway or its providers: a 5xx, or a 200 stream that was cut (its record is not a success).</summary>
    public static bool IsServiceFailure(AuditRecord record) => !record.Success && (record.Status >= 500 || record.Status < 400);

    /// <summary>Nearest-rank percentile; null for no values.</summary>
    public static double? Percentile(List<double> values, double p)
    {
        if (values.Count == 0)
        {
            return null;
        }
        values.Sort();
        var rank = (int)Math.Ceiling(p * values.Count);
        return values[Math.Clamp(rank - 1, 0, values.Count - 1)];
    }

    private static double? Ratio(int part, int whole) => whole == 0 ? null : (double)part / whole;

    private sealed class AliasCounter
    {
        public int Requests;
        public int ServiceFailures;
        public int Errors;
        public int Fallbacks;
        public int Resumes;
        public long Tokens;

        public AliasTraffic ToTraffic(string alias) => new(alias, Requests, Errors, Fallbacks, Resumes, Tokens,
            Requests == 0 ? null : 1 - (double)ServiceFailures / Requests);
    }

    private sealed class DeploymentCounter
    {
        public int Calls;
        public int Succeeded;
        public int Failed;
        public int Skipped;
        public int Answered;
        public int Resumes;
        public long Tokens;

        public DeploymentTraffic ToTraffic(string deployment) => new(deployment, Calls, Succeeded, Failed, Skipped, Answered, Resumes, Tokens,
            Succeeded + Failed == 0 ? null : (double)Succeeded / (Succeeded + Failed));
    }
}

/// <summary>An alias's requests in the window; availability as <see cref="TrafficStats.Availability"/> defines it.</summary>
internal sealed record AliasTraffic(string Alias, int Requests, int Errors, int Fallbacks, int Resumes, long Tokens, double? Availability);

/// <summary>
/// A deployment's part in the window's requests: upstream calls it took, how they went, how often it was skipped
/// (breaker open, overloaded, unavailable), the requests it answered and their tokens. Availability: its successful
/// calls over its successful and failed ones.
/// </summary>
internal sealed record DeploymentTraffic(string Deployment, int Calls, int Succeeded, int Failed, int Skipped, int Answered, int Resumes, long Tokens,
    double? Availability);
