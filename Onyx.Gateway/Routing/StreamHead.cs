using Onyx.Gateway.Providers;

namespace Onyx.Gateway.Routing;

/// <summary>A stream attempt read up to its first token: the chunks so far, and the attempt that owns the rest.</summary>
internal sealed class StreamHead(Attempt attempt, List<StreamChunk> head, bool ended)
{
    public Attempt Attempt { get; } = attempt;

    public List<StreamChunk> Head { get; } = head;

    /// <summary>The upstream already finished (an empty answer).</summary>
    public bool Ended { get; } = ended;

    public IAsyncEnumerator<StreamChunk> Rest => Attempt.Upstream;
}
