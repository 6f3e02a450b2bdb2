using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json.Nodes;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;

namespace Onyx.Gateway.Routing;

/// <summary>
/// Splices a regenerated answer onto one the client already has part of: passes the new stream on only from the
/// point where it has reproduced <c>prefix</c> exactly, and fails the attempt if it says anything else. Used when
/// a deployment refuses to continue a prefilled answer, so the client never receives two different beginnings.
/// </summary>
internal static class PrefixSplice
{
    /// <summary>A chunk that proves the upstream is producing but carries nothing to forward (the timers see it).</summary>
    public static readonly StreamChunk Progress = new(ReadOnlyMemory<byte>.Empty, default);

    public static async IAsyncEnumerable<StreamChunk> AfterPrefix(IAsyncEnumerable<StreamChunk> chunks, string prefix, Deployment deployment,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var seen = new StringBuilder();
        var matched = prefix.Length == 0;
        await foreach (var chunk in chunks.WithCancellation(cancellationToken))
        {
            if (matched)
            {
                yield return chunk;
                continue;
            }
            var before = seen.Length;
            ChunkInspector.Inspect(chunk.Json.Span, seen);
            var agreed = seen.Length <= prefix.Length
                ? string.CompareOrdinal(prefix, 0, seen.ToString(), 0, seen.Length) == 0
                : seen.ToString(0, prefix.Length) == prefix;
            if (!agreed)
            {
                throw new UpstreamException(FailureKind.StreamBroken,
                    $"{deployment.Id} could not continue the answer: it refused the partial answer, and its new answer begins differently");
            }
            if (seen.Length < prefix.Length || (seen.Length == prefix.Length && !chunk.Info.HasFinishReason))
            {
                if (chunk.Info.HasFinishReason)
                {
                    break;
                }
                yield return Progress;
                continue;
            }
            matched = true;
            var rest = seen.ToString(Math.Max(before, prefix.Length), seen.Length - Math.Max(before, prefix.Length));
            yield return before >= prefix.Length ? chunk : WithContent(chunk, rest);
        }
        if (!matched)
        {
            throw new UpstreamException(FailureKind.StreamBroken,
                $"{deployment.Id} could not continue the answer: its new answer ended before reaching the point the client has");
        }
    }

    /// <summary>The chunk with its delta's content replaced (the part of the boundary chunk the client does not have).</summary>
    private static StreamChunk WithContent(StreamChunk chunk, string content)
    {
        var node = JsonNode.Parse(chunk.Json.Span)!;
        if (node["choices"] is JsonArray { Count: > 0 } choices && choices[0]?["delta"] is JsonObject delta)
        {
            delta["content"] = content;
            delta.Remove("role");
        }
        return new StreamChunk(System.Text.Encoding.UTF8.GetBytes(node.ToJsonString()),
            chunk.Info with { HasContent = content.Length > 0 });
    }
}
