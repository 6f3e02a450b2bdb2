using System.Globalization;

namespace Onyx.Gateway.Ui;

/// <summary>How the console writes numbers and times: invariant culture, UTC, units spelled out.</summary>
internal static class Display
{
    public static string Percent(double? ratio) => ratio is { } r ? (r * 100).ToString(r is > 0.999 and < 1 ? "0.00" : "0.#", CultureInfo.InvariantCulture) + " %" : "–";

    public static string Ms(double? ms) => ms is { } v ? v.ToString("0", CultureInfo.InvariantCulture) + " ms" : "–";

    public static string Usd(decimal? usd) => usd is { } v ? "$" + v.ToString(v != 0 && Math.Abs(v) < 0.01m ? "0.######" : "0.00##", CultureInfo.InvariantCulture) : "–";

    public static string Time(DateTimeOffset? time) => time is { } t ? t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + " UTC" : "–";

    public static string Count(long value) => value.ToString("#,0", CultureInfo.InvariantCulture);

    public static string Number(double? value, string format = "0.#") => value is { } v ? v.ToString(format, CultureInfo.InvariantCulture) : "–";

    public static string Limit(int? limit) => limit switch { null => "default", 0 => "none", { } n => n.ToString("#,0", CultureInfo.InvariantCulture) };

    /// <summary>How long ago, roughly: "12 s ago", "3 min ago".</summary>
    public static string Ago(DateTimeOffset? time, DateTimeOffset now)
    {
        if (time is not { } t)
        {
            return "–";
        }
        var age = now - t;
        return age.TotalSeconds < 90 ? $"{Math.Max(0, (int)age.TotalSeconds)} s ago"
            : age.TotalMinutes < 90 ? $"{(int)age.TotalMinutes} min ago"
            : age.TotalHours < 48 ? $"{(int)age.TotalHours} h ago"
            : $"{(int)age.TotalDays} d ago";
    }

    /// <summary>The console's windows and periods: <c>5m</c>, <c>1h</c>, <c>24h</c>, <c>7d</c>, <c>30d</c>.</summary>
    public static bool TryWindow(string? text, out TimeSpan window)
    {
        window = text switch
        {
            "5m" => TimeSpan.FromMinutes(5),
            "1h" => TimeSpan.FromHours(1),
            "24h" => TimeSpan.FromHours(24),
            "7d" => TimeSpan.FromDays(7),
            "30d" => TimeSpan.FromDays(30),
            _ => TimeSpan.Zero,
        };
        return window > TimeSpan.Zero;
    }
}
