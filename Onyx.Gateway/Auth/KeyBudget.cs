using System.Globalization;
using System.Text.Json.Serialization;

namespace Onyx.Gateway.Auth;

/// <summary>
/// A key's budget, as LiteLLM's keys have it: at most <see cref="MaxBudget"/> US dollars per
/// <see cref="BudgetDuration"/> (or in all, without one), a <see cref="SoftBudget"/> that is only reported, and
/// per-alias budgets.
/// </summary>
internal sealed record KeyBudget(decimal? MaxBudget, string? BudgetDuration, decimal? SoftBudget, IReadOnlyDictionary<string, ModelBudget>? ModelMaxBudget)
{
    public static KeyBudget? Of(ApiKeyRecord key) =>
        key.MaxBudget is null && key.SoftBudget is null && key.ModelMaxBudget is not { Count: > 0 } && key.BudgetDuration is null
            ? null
            : new KeyBudget(key.MaxBudget, key.BudgetDuration, key.SoftBudget, key.ModelMaxBudget);

    public ModelBudget? For(string alias) => ModelMaxBudget?.GetValueOrDefault(alias);
}

/// <summary>One entry of LiteLLM's <c>model_max_budget</c>: <c>{"budget_limit": 0.5, "time_period": "1d"}</c>.</summary>
internal sealed record ModelBudget
{
    [JsonPropertyName("budget_limit")] public required decimal BudgetLimit { get; init; }

    [JsonPropertyName("time_period")] public string? TimePeriod { get; init; }
}

/// <summary>
/// LiteLLM's budget durations (<c>30s</c>, <c>15m</c>, <c>1h</c>, <c>1d</c>, <c>30d</c>) and when their windows end.
/// As in LiteLLM, windows end on round times, in UTC, whenever they started: <c>Nd</c> at midnight (<c>1d</c> the next
/// one, <c>7d</c> on Monday, <c>30d</c> on the first of the month, other N in N days), <c>Nh</c> on the next multiple of N
/// hours in the day, <c>Nm</c> of N minutes in the hour, <c>Ns</c> of N seconds in the minute.
/// </summary>
internal static class BudgetDurations
{
    public const string Expected = "a whole number and s, m, h or d (\"30s\", \"1h\", \"1d\", \"30d\")";

    public static bool IsValid(string? text) => TryParse(text, out _, out _);

    /// <summary>When a window of <paramref name="duration"/> that is open at <paramref name="now"/> ends.</summary>
    public static DateTimeOffset NextReset(string duration, DateTimeOffset now)
    {
        if (!TryParse(duration, out var n, out var unit))
        {
            throw new ArgumentException($"'{duration}' is not a budget duration: {Expected}.", nameof(duration));
        }
        var utc = now.ToUniversalTime();
        var midnight = new DateTimeOffset(utc.Year, utc.Month, utc.Day, 0, 0, 0, TimeSpan.Zero);
        return unit switch
        {
            'd' when n == 1 => midnight.AddDays(1),
            'd' when n == 7 => midnight.AddDays((int)utc.DayOfWeek == 1 ? 7 : (8 - (int)utc.DayOfWeek) % 7),
            'd' when n == 30 => new DateTimeOffset(utc.Year, utc.Month, 1, 0, 0, 0, TimeSpan.Zero).AddMonths(1),
            'd' => midnight.AddDays(n),
            'h' => midnight.AddHours((utc.Hour / n + 1) * n),
            'm' => midnight.AddHours(utc.Hour).AddMinutes((utc.Minute / n + 1) * n),
            _ => midnight.AddHours(utc.Hour).AddMinutes(utc.Minute).AddSeconds((utc.Second / n + 1) * n),
        };
    }

    /// <summary><see cref="NextReset"/> in Unix milliseconds; 0 without a duration (the budget never resets).</summary>
    public static long NextResetMs(string? duration, DateTimeOffset now) =>
        duration is null ? 0 : NextReset(duration, now).ToUnixTimeMilliseconds();

    private static bool TryParse(string? text, out int amount, out char unit)
    {
        amount = 0;
        unit = default;
        if (text is not { Length: >= 2 } || text[^1] is not ('s' or 'm' or 'h' or 'd')
            || !int.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out amount) || amount < 1
            || amount > (text[^1] == 'd' ? 3660 : 1_000_000))
        {
            return false;
        }
        unit = text[^1];
        return true;
    }
}
