using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;

namespace Onyx.Benchmarks.Micro;

/// <summary>
/// The client side of a stream as <c>ChatStreamResult</c> (Onyx.Gateway/Api/OpenAiResults.cs) writes it: each chunk
/// as a <c>data:</c> event through <see cref="SseWriter"/> into the response's pipe, flushed whenever the source has
/// nothing more ready, then <c>data: [DONE]</c>.
/// </summary>
internal static class ClientSse
{
    /// <summary>A provider's stream, as the endpoint gets it from <c>RoutedStream.ReadAsync</c>: each chunk's JSON.</summary>
    public static Task WriteAsync(IAsyncEnumerable<StreamChunk> chunks, Stream body) => WriteAsync(Json(chunks), body);

    public static async Task WriteAsync(IAsyncEnumerable<ReadOnlyMemory<byte>> chunks, Stream body)
    {
        var writer = PipeWriter.Create(body, new StreamPipeWriterOptions(leaveOpen: true));
        await using (var events = chunks.GetAsyncEnumerator())
        {
            while (true)
            {
                var next = events.MoveNextAsync();
                if (!next.IsCompleted)
                {
                    await writer.FlushAsync();
                }
                if (!await next)
                {
                    SseWriter.WriteEvent(writer, SseWriter.Done);
                    break;
                }
                SseWriter.WriteEvent(writer, events.Current.Span);
            }
        }
        await writer.FlushAsync();
        await writer.CompleteAsync();
    }

    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> Json(IAsyncEnumerable<StreamChunk> chunks,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var chunk in chunks.WithCancellation(cancellationToken))
        {
            yield return chunk.Json;
        }
    }
}

/// <summary>A response body that keeps nothing: it counts the bytes and flushes, and never allocates.</summary>
internal sealed class CountingSink : Stream
{
    public long Written { get; private set; }

    public int Flushes { get; private set; }

    public void Reset() => (Written, Flushes) = (0, 0);

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => Written;

    public override long Position
    {
        get => Written;
        set => throw new NotSupportedException();
    }

    public override void Write(byte[] buffer, int offset, int count) => Written += count;

    public override void Write(ReadOnlySpan<byte> buffer) => Written += buffer.Length;

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Written += buffer.Length;
        return default;
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        Written += count;
        return Task.CompletedTask;
    }

    public override void Flush() => Flushes++;

    public override Task FlushAsync(CancellationToken cancellationToken)
    {
        Flushes++;
        return Task.CompletedTask;
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
