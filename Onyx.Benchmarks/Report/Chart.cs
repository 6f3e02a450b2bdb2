using System.Globalization;
using ScottPlot;
using Onyx.Benchmarks.Load;

namespace Onyx.Benchmarks.Report;

/// <summary>
/// Time-to-first-token percentiles, direct vs through the gateway, per scenario at concurrency 16: one PNG. Each gateway bar is
/// labelled with what the gateway adds (gateway − direct), and each scenario is named once, under its middle bar pair.
/// </summary>
internal static class Chart
{
    public static void WriteTimeToFirstToken(IReadOnlyList<ScenarioResult> results, string path)
    {
        var plot = new Plot();
        var palette = new[] { Colors.SteelBlue, Colors.DarkOrange };
        var percentiles = new[] { ("p50", (Func<TargetSummary, double>)(s => s.TtftP50)), ("p90", s => s.TtftP90), ("p99", s => s.TtftP99) };
        var ticks = new List<Tick>();
        var x = 0.0;
        foreach (var result in results.Where(r => r.Scenario.Concurrency == 16))
        {
            for (var i = 0; i < percentiles.Length; i++)
            {
                var (label, value) = percentiles[i];
                var added = value(result.Gateway) - value(result.Direct);
                plot.Add.Bar(new Bar { Position = x, Value = value(result.Direct), FillColor = palette[0], Size = 0.8 });
                plot.Add.Bar(new Bar { Position = x + 0.85, Value = value(result.Gateway), FillColor = palette[1], Size = 0.8, Label = added.ToString("+0.00;-0.00", CultureInfo.InvariantCulture) });
                ticks.Add(new Tick(x + 0.425, i == percentiles.Length / 2 ? $"{label}\n{result.Scenario.Name}" : label));
                x += 2.2;
            }
            x += 1.2;
        }
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.ToArray());
        plot.Axes.Bottom.MajorTickStyle.Length = 0;
        plot.Axes.Left.Label.Text = "time to first token (ms)";
        plot.Title("Onyx gateway: time to first token, direct vs through the gateway");
        plot.Legend.IsVisible = true;
        plot.Legend.Alignment = Alignment.UpperLeft;
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "direct to upstream", FillColor = palette[0] });
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "through Onyx (label: ms added)", FillColor = palette[1] });
        plot.Axes.Margins(bottom: 0);
        plot.SavePng(path, Math.Max(900, ticks.Count * 70), 520);
    }
}
