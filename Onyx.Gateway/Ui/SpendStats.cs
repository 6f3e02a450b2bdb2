using Onyx.Gateway.Audit;

namespace Onyx.Gateway.Ui;

/// <summary>
/// What calls cost over a period, from their audit records' <c>cost_usd</c>: in all, per key, per user, per alias, and
/// per time bucket for the chart. A key's budget window (Keys page) is a different question: what it has spent since
/// its window began, as the limiter counts it.
/// </summary>
internal sealed record SpendStats(
    decimal Total,
    int Calls,
    int Unpriced,
    IReadOnlyList<SpendRow> ByKey,
    IReadOnlyList<SpendRow> ByUser,
    IReadOnlyList<SpendRow> ByModel,
    IReadOnlyList<SpendBucket> Buckets)
{
    /// <summary>The chart has this many bars over the period.</summary>
    public const int BucketCount = 24;

    public static SpendStats From(IReadOnlyList<AuditRecord> records, DateTimeOffset from, DateTimeOffset to)
    {
        var width = (to - from) / BucketCount;
        var buckets = new decimal[BucketCount];
        var byKey = new Dictionary<string, (decimal Usd, int Calls, long Tokens)>(StringComparer.Ordinal);
        var byUser = new Dictionary<string, (decimal Usd, int Calls, long Tokens)>(StringComparer.Ordinal);
        var byModel = new Dictionary<string, (decimal Usd, int Calls, long Tokens)>(StringComparer.Ordinal);
        decimal total = 0;
        var unpriced = 0;
        foreach (var record in records)
        {
            var cost = record.CostUsd ?? 0;
            unpriced += record.CostUsd is null && record.Tokens.Total > 0 ? 1 : 0;
            total += cost;
            Add(byKey, record.KeyName ?? "(none)", cost, record.Tokens.Total);
            Add(byUser, record.UserId ?? "(none)", cost, record.Tokens.Total);
            Add(byModel, record.Alias, cost, record.Tokens.Total);
            if (width > TimeSpan.Zero && record.Timestamp >= from && record.Timestamp <= to)
            {
                buckets[Math.Min(BucketCount - 1, (int)((record.Timestamp - from) / width))] += cost;
            }
        }
        return new SpendStats(total, records.Count, unpriced, Rows(byKey), Rows(byUser), Rows(byModel),
            [.. buckets.Select((usd, i) => new SpendBucket(from + width * i, usd))]);
    }

    private static void Add(Dictionary<string, (decimal Usd, int Calls, long Tokens)> to, string name, decimal usd, long tokens)
    {
        var (sum, calls, count) = to.GetValueOrDefault(name);
        to[name] = (sum + usd, calls + 1, count + tokens);
    }

    private static List<SpendRow> Rows(Dictionary<string, (decimal Usd, int Calls, long Tokens)> rows) =>
        [.. rows.Select(r => new SpendRow(r.Key, r.Value.Usd, r.Value.Calls, r.Value.Tokens))
            .OrderByDescending(r => r.Usd).ThenByDescending(r => r.Calls).ThenBy(r => r.Name, StringComparer.Ordinal)];
}

internal sealed record SpendRow(string Name, decimal Usd, int Calls, long Tokens);

internal sealed record SpendBucket(DateTimeOffset Start, decimal Usd);
