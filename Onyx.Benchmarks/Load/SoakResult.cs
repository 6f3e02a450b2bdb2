namespace Onyx.Benchmarks.Load;

/// <summary>One reading during the soak.</summary>
internal sealed record SoakSample(TimeSpan At, long Requests, long Errors, double RssMegabytes, double GcHeapMegabytes);

/// <summary>The soak: samples, and growth from just after warm-up to the end.</summary>
internal sealed record SoakResult(Scenario Scenario, TimeSpan WarmUp, IReadOnlyList<SoakSample> Samples, TargetSummary Gateway)
{
    /// <summary>Growth beyond this (after warm-up, start to end) counts as a leak.</summary>
    public const double AllowedGrowthMegabytes = 5;

    private IReadOnlyList<SoakSample> AfterWarmUp => Samples.Where(s => s.At >= WarmUp).ToList();

    public double RssGrowthMegabytes => Growth(s => s.RssMegabytes);

    public double GcHeapGrowthMegabytes => Growth(s => s.GcHeapMegabytes);

    public bool Flat => RssGrowthMegabytes <= AllowedGrowthMegabytes
        && (double.IsNaN(GcHeapGrowthMegabytes) || GcHeapGrowthMegabytes <= AllowedGrowthMegabytes)
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
