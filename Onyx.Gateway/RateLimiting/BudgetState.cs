
namespace Onyx.Gateway.RateLimiting;

/// <summary>A key's budget as a store holds it: its window's spend, reservations and end, and the same per alias.</summary>
internal sealed record BudgetState(long Spend, long Reserved, long ResetAt, IReadOnlyDictionary<string, ModelBudgetState> Models)
{
    /// <summary>Reads the fields of a key's budget hash (see <see cref="RedisUsageStore"/>).</summary>
    public static BudgetState Parse(IEnumerable<(string Field, long Value)> fields)
    {
        long spend = 0, reserved = 0, resetAt = 0;
        var models = new Dictionary<string, (long Spend, long Reserved, long ResetAt)>(StringComparer.Ordinal);
        foreach (var (field, value) in fields)
        {
            switch (field)
            {
                case "spend":
                    spend = value;
                    continue;
                case "reserved":
                    reserved = value;
                    continue;
                case "reset_at":
                    resetAt = value;
                    continue;
            }
            var end = field.LastIndexOf(':');
            if (!field.StartsWith("m:", StringComparison.Ordinal) || end <= 2)
            {
                continue;
            }
            var alias = field[2..end];
            var model = models.GetValueOrDefault(alias);
            models[alias] = field[(end + 1)..] switch
            {
                "spend" => model with { Spend = value },
                "reserved" => model with { Reserved = value },
                "reset_at" => model with { ResetAt = value },
                _ => model,
            };
        }
        return new BudgetState(spend, reserved, resetAt,
            models.ToDictionary(m => m.Key, m => new ModelBudgetState(m.Value.Spend, m.Value.Reserved, m.Value.ResetAt), StringComparer.Ordinal));
    }
}

internal sealed record ModelBudgetState(long Spend, long Reserved, long ResetAt);
