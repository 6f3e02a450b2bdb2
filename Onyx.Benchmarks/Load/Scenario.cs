namespace Onyx.Benchmarks.Load;

/// <summary>One load shape, run against the upstream directly and through the gateway, interleaved.</summary>
internal sealed record Scenario(string Name, string Description, bool Stream, int Concurrency, int Tokens, TimeSpan TokenDelay, TimeSpan DurationPerTarget, TimeSpan Slice)
{
    /// <summary>The alias the gateway's bench config serves from the OpenAI-compatible fake.</summary>
    public const string GatewayModel = "bench-openai";

    private const string LimitsSuffix = "-limits";

    /// <summary>
    /// Runs on the gateway with its features on (API key, rate limits counted in Redis) instead of the one with
    /// its limits off.
    /// </summary>
    public bool Limits { get; init; }

    /// <summary>Also runs through the bare .NET proxy in the same slices: the floor any .NET proxy costs here.</summary>
    public bool Floor { get; init; }

    /// <summary>
    /// How far apart the workers' first requests are spread at the start of a slice: over one stream's length
    /// when the upstream is paced, none when it answers as fast as it can. Every paced stream lasts the same
    /// time, so workers that all started in one instant would stay in lock-step for the whole slice and the
    /// proxy would get all of them in the same millisecond, again and again: its time to first token would
    /// then measure the last one's wait in that queue, not the proxy's own latency. Real callers do not
    /// arrive in lock-step; spread once, each worker keeps its own phase, give or take the streams' jitter.
    /// </summary>
    public TimeSpan StartSpread => TokenDelay * Tokens;

    /// <summary>For a <see cref="Limits"/> scenario, the scenario it repeats with limits off (its cost is the difference).</summary>
    public string? LimitsOffTwin { get; init; }

    /// <summary>The same load against the gateway with its features on: named <c>&lt;name&gt;-limits</c>.</summary>
    public Scenario WithLimits() => this with
    {
        Name = Name + LimitsSuffix,
        Description = Description + ", API key and rate limits in Redis",
        Limits = true,
        LimitsOffTwin = Name,
        Floor = false,
    };
}
