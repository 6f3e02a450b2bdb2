namespace Onyx.Benchmarks.Load;

/// <summary>One load shape, run against the upstream directly and through the gateway, interleaved.</summary>
internal sealed record Scenario(string Name, string Description, bool Stream, int Concurrency, int Tokens, TimeSpan TokenDelay, TimeSpan DurationPerTarget, TimeSpan Slice)
{
    /// <summary>The alias the gateway's bench config serves from the OpenAI-compatible fake.</summary>
    public const string GatewayModel = "bench-openai";
}
