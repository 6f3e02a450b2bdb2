using System.Buffers;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using Onyx.Gateway.Providers;

namespace Onyx.Benchmarks.Micro;

/// <summary>
/// The client side of a stream as <c>ChatStreamResult</c> (Onyx.Gateway/Api/OpenAiResults.cs) writes it: each chunk
/// as a <c>data:</c> event through <see cref="SseFormatter"/>, flushed one by one, then <c>data: [DONE]</c>.
/// </summary>
internal static class ClientSse
{
    private static readonly ReadOnlyMemory<byte> Done = "[DONE]"u8.ToArray();

    /// <summary>A provider's stream, as the endpoint gets it from <c>RoutedStream.ReadAsync</c>: each chunk's JSON.</summary>
    public static Task WriteAsync(IAsyncEnumerable<StreamChunk> chunks, Stream body) => WriteAsync(Json(chunks), body);

    public static Task WriteAsync(IAsyncEnumerable<ReadOnlyMemory<byte>> chunks, Stream body) =>
        SseFormatter.WriteAsync(Events(chunks), body, static (item, writer) => writer.Write(item.Data.Span), CancellationToken.None);

    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> Json(IAsyncEnumerable<StreamChunk> chunks,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var chunk in chunks.WithCancellation(cancellationToken))
        {
            yield return chunk.Json;
        }
    }

    private static async IAsyncEnumerable<SseItem<ReadOnlyMemory<byte>>> Events(IAsyncEnumerable<ReadOnlyMemory<byte>> chunks,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var chunk in chunks.WithCancellation(cancellationToken))
        {
            yield return new SseItem<ReadOnlyMemory<byte>>(chunk);
        }
        yield return new SseItem<ReadOnlyMemory<byte>>(Done);
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
