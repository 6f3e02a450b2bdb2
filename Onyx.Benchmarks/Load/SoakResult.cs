namespace Onyx.Benchmarks.Load;

/// <summary>
/// One reading during the soak. <paramref name="LiveHeapMegabytes"/> is the managed heap after a forced full
/// collection (<see cref="LiveHeap"/>); <paramref name="GcHeapMegabytes"/> is the runtime's "GC heap size" counter
/// just before it, which also holds the garbage allocated since the last collection.
/// </summary>
internal sealed record SoakSample(TimeSpan At, long Requests, long Errors, double RssMegabytes, double LiveHeapMegabytes, double GcHeapMegabytes);

/// <summary>The soak: samples, and growth from just after warm-up to the end.</summary>
internal sealed record SoakResult(Scenario Scenario, TimeSpan WarmUp, IReadOnlyList<SoakSample> Samples, TargetSummary Gateway)
{
    /// <summary>Growth beyond this (after warm-up, start to end) counts as a leak.</summary>
    public const double AllowedGrowthMegabytes = 5;

    private IReadOnlyList<SoakSample> AfterWarmUp => Samples.Where(s => s.At >= WarmUp).ToList();

    public double RssGrowthMegabytes => Growth(s => s.RssMegabytes);

    /// <summary>
    /// Growth of the live heap. The counter's heap size (<see cref="SoakSample.GcHeapMegabytes"/>) swings by several MB
    /// with every gen0 cycle, depending on the instant a reading falls in, so it is shown but not judged.
    /// </summary>
    public double LiveHeapGrowthMegabytes => Growth(s => s.LiveHeapMegabytes);

    /// <summary>Least-squares slope of RSS after warm-up, in MB per minute (a leak shows as a steady positive slope).</summary>
    public double RssSlopeMegabytesPerMinute => Slope(s => s.RssMegabytes);

    public double LiveHeapSlopeMegabytesPerMinute => Slope(s => s.LiveHeapMegabytes);

    private double Slope(Func<SoakSample, double> value)
    {
        var samples = AfterWarmUp.Where(s => !double.IsNaN(value(s))).ToList();
        if (samples.Count < 3)
        {
            return double.NaN;
        }
        var meanX = samples.Average(s => s.At.TotalMinutes);
        var meanY = samples.Average(value);
        var num = samples.Sum(s => (s.At.TotalMinutes - meanX) * (value(s) - meanY));
        var den = samples.Sum(s => Math.Pow(s.At.TotalMinutes - meanX, 2));
        return den == 0 ? double.NaN : num / den;
    }

    public bool Flat => RssGrowthMegabytes <= AllowedGrowthMegabytes
        && (double.IsNaN(LiveHeapGrowthMegabytes) || LiveHeapGrowthMegabytes <= AllowedGrowthMegabytes)
        && Gateway.Errors == 0;

    /// <summary>Mean of the last three readings minus the mean of the first three after warm-up.</summary>
    private double Growth(Func<SoakSample, double> value)
    {
        var samples = AfterWarmUp;
        if (samples.Count < 2)
        {
            return double.NaN;
        }
        var n = Math.Min(3, samples.Count / 2);
        return samples.TakeLast(n).Average(value) - samples.Take(n).Average(value);
    }
}
