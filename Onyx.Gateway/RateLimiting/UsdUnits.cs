
namespace Onyx.Gateway.RateLimiting;

/// <summary>
/// US dollars as whole units of 10⁻⁸ — the precision a call's cost is rounded to — so that Redis and Lua add them
/// exactly (a Lua number holds integers exactly up to 2⁵³ units, about 90 million dollars).
/// </summary>
internal static class UsdUnits
{
    public const decimal PerDollar = 100_000_000m;

    public static long From(decimal usd) => (long)Math.Round(usd * PerDollar, MidpointRounding.AwayFromZero);

    public static decimal ToUsd(long units) => units / PerDollar;
}
