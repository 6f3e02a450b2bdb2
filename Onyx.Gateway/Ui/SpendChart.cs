using System.Globalization;
using System.Net;
using System.Text;

namespace Onyx.Gateway.Ui;

/// <summary>
/// The Spend page's bar chart as inline SVG, written by hand: a few dozen elements need no plotting library (ScottPlot
/// would bring SkiaSharp's native library into the gateway), and SVG presentation attributes and CSS classes keep to the
/// console's Content-Security-Policy (no inline style, no script). It scales to the page's width.
/// </summary>
internal static class SpendChart
{
    private const int Width = 720;
    private const int Height = 220;
    private const int Left = 64;
    private const int Bottom = 28;
    private const int Top = 12;

    public static string Svg(IReadOnlyList<SpendBucket> buckets, string title)
    {
        var max = buckets.Count == 0 ? 0 : buckets.Max(b => b.Usd);
        var scale = max <= 0 ? 1m : NiceCeiling(max);
        var plotWidth = Width - Left - 8;
        var plotHeight = Height - Top - Bottom;
        var barWidth = buckets.Count == 0 ? 0 : (double)plotWidth / buckets.Count;
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"""<svg class="chart" viewBox="0 0 {Width} {Height}" role="img" aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg">""");
        svg.Append(CultureInfo.InvariantCulture, $"""<title id="chart-title">{WebUtility.HtmlEncode(title)}</title>""");
        for (var i = 0; i <= 4; i++)
        {
            var y = Top + plotHeight - plotHeight * i / 4.0;
            var value = scale * i / 4;
            svg.Append(CultureInfo.InvariantCulture, $"""<line class="grid" x1="{Left}" x2="{Width - 8}" y1="{y:0.#}" y2="{y:0.#}"/>""");
            svg.Append(CultureInfo.InvariantCulture, $"""<text class="axis" x="{Left - 6}" y="{y + 4:0.#}" text-anchor="end">${value:0.####}</text>""");
        }
        for (var i = 0; i < buckets.Count; i++)
        {
            var bucket = buckets[i];
            var h = (double)(bucket.Usd / scale) * plotHeight;
            var x = Left + i * barWidth;
            svg.Append(CultureInfo.InvariantCulture,
                $"""<rect class="bar" x="{x + 1:0.#}" y="{Top + plotHeight - h:0.#}" width="{Math.Max(1, barWidth - 2):0.#}" height="{h:0.#}"><title>{bucket.Start:yyyy-MM-dd HH:mm} UTC: ${bucket.Usd:0.######}</title></rect>""");
            if (i % 6 == 0)
            {
                svg.Append(CultureInfo.InvariantCulture,
                    $"""<text class="axis" x="{x:0.#}" y="{Height - 8}">{bucket.Start:MM-dd HH:mm}</text>""");
            }
        }
        svg.Append("</svg>");
        return svg.ToString();
    }

    /// <summary>1, 2 or 5 times a power of ten, at or above <paramref name="value"/>: round numbers on the axis.</summary>
    internal static decimal NiceCeiling(decimal value)
    {
        var power = (decimal)Math.Pow(10, Math.Floor(Math.Log10((double)value)));
        foreach (var step in new[] { 1m, 2m, 5m, 10m })
        {
            if (step * power >= value)
            {
                return step * power;
            }
        }
        return 10 * power;
    }
}
