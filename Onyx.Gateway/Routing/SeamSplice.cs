using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using System.Text;
using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;

namespace Onyx.Gateway.Routing;

/// <summary>
/// Runs a continuation's chunks through its <see cref="SeamCheck"/>: what proves the seam is consumed silently (as
/// progress, so the timers see the upstream is alive), the chunk where the proof completes is cut to the text the
/// client does not have yet, and everything after passes unchanged. A divergence fails the attempt.
/// </summary>
internal static class SeamSplice
{
    public static async IAsyncEnumerable<StreamChunk> Verified(IAsyncEnumerable<StreamChunk> chunks, SeamCheck seam, Deployment deployment,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var text = new StringBuilder();
        await foreach (var chunk in chunks.WithCancellation(cancellationToken))
        {
            if (seam.State == SeamState.Matched || chunk.Json.IsEmpty)
            {
                yield return chunk;
                continue;
            }
            text.Clear();
            ChunkInspector.Inspect(chunk.Json.Span, text);
            var state = chunk.Info.HasToolCall ? seam.Reject("a tool call") : seam.Add(text.ToString());
            if (state == SeamState.Pending && chunk.Info.HasFinishReason)
            {
                state = seam.End();
            }
            if (state == SeamState.Diverged)
            {
                throw new UpstreamException(FailureKind.Diverged, $"{deployment.Id} could not continue the answer: {seam.Divergence}");
            }
            if (state == SeamState.Pending)
            {
                yield return StreamStarter.Progress;
                continue;
            }
            var rest = seam.Rest;
            if (rest.Length > 0 || chunk.Info.HasFinishReason)
            {
                yield return WithContent(chunk, rest);
            }
            else
            {
                yield return StreamStarter.Progress;
            }
        }
        if (seam.State != SeamState.Matched)
        {
            throw new UpstreamException(FailureKind.Diverged,
                $"{deployment.Id} could not continue the answer: its answer ended before reaching the point the client has");
        }
    }

    /// <summary>The chunk with its delta's content replaced by <paramref name="content"/> (the part the client does not have).</summary>
    private static StreamChunk WithContent(StreamChunk chunk, string content)
    {
        var node = JsonNode.Parse(chunk.Json.Span)!;
        if (node["choices"] is JsonArray { Count: > 0 } choices && choices[0]?["delta"] is JsonObject delta)
        {
            if (content.Length > 0)
            {
                delta["content"] = content;
            }
            else
            {
                delta.Remove("content");
            }
            delta.Remove("reasoning_content");
        }
        return new StreamChunk(Encoding.UTF8.GetBytes(node.ToJsonString()), chunk.Info with { HasContent = content.Length > 0 });
    }
}
