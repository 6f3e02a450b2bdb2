using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;

namespace Onyx.Gateway.Routing;

/// <summary>Opens a stream on an attempt and reads it up to its first token, within the first-token limit.</summary>
internal static class StreamStarter
{
    /// <summary>A chunk that proves the upstream is producing but carries nothing to forward (the timers see it).</summary>
    public static readonly StreamChunk Progress = new(ReadOnlyMemory<byte>.Empty, default);

    /// <param name="verify">Wraps the upstream's chunks (a continuation's seam check) before they are read.</param>
    /// <exception cref="UpstreamException">The upstream failed before its first token.</exception>
    /// <exception cref="OperationCanceledException">The first-token limit passed, or the client left.</exception>
    public static async Task<StreamHead> StartAsync(Attempt attempt, ChatRequest request, TimeSpan firstTokenLimit,
        Func<IAsyncEnumerable<StreamChunk>, IAsyncEnumerable<StreamChunk>>? verify = null)
    {
        attempt.Timer.CancelAfter(firstTokenLimit);
        attempt.Enter();
        var stream = attempt.Provider.StreamAsync(attempt.Deployment, request, attempt.Context, attempt.Token);
        if (verify is not null)
        {
            stream = verify(stream);
        }
        var chunks = stream.GetAsyncEnumerator(attempt.Token);
        attempt.Own(chunks);
        var head = new List<StreamChunk>(2);
        var ended = false;
        while (true)
        {
            if (!await chunks.MoveNextAsync())
            {
                ended = true;
                break;
            }
            if (chunks.Current.Json.IsEmpty)
            {
                // Progress that the client does not see (a continuation reproducing what it has): the limit starts again.
                attempt.Timer.CancelAfter(firstTokenLimit);
                continue;
            }
            head.Add(chunks.Current);
            if (chunks.Current.Info.HasContent || chunks.Current.Info.HasFinishReason)
            {
                break;
            }
        }
        // The first-token limit is over. Until the reader next waits for the upstream no limit runs: the time the head
        // takes to reach a slow client is not the upstream's silence (the reader's idle watch counts only its waits).
        attempt.Timer.CancelAfter(Timeout.InfiniteTimeSpan);
        return new StreamHead(attempt, head, ended);
    }
}
