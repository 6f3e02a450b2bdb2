using System.Buffers;
using System.Text.Json;

namespace Onyx.Gateway.OpenAi;

/// <summary>
/// Small JSON documents the gateway writes per request or per chunk (upstream bodies, translated chunks), written
/// into a buffer kept per thread and returned as an exactly sized array: the array is the only allocation, where a
/// fresh buffer and writer for each document would allocate it two to three times over.
/// </summary>
internal static class JsonBytes
{
    private const int InitialBytes = 4 * 1024;

    /// <summary>A request with a long conversation grows the buffer; above this it is not kept for the thread.</summary>
    private const int MaxKeptBytes = 256 * 1024;

    [ThreadStatic]
    private static Scratch? t_scratch;

    /// <summary>
    /// The bytes <paramref name="write"/> writes. <paramref name="write"/> runs synchronously; pass a static lambda
    /// and its inputs as <paramref name="state"/>, so nothing is captured.
    /// </summary>
    public static byte[] Write<TState>(TState state, Action<Utf8JsonWriter, TState> write)
    {
        // Taken off the thread while in use: a document written inside another one gets a scratch of its own.
        var scratch = t_scratch ?? new Scratch();
        t_scratch = null;
        try
        {
            scratch.Writer.Reset(scratch.Buffer);
            write(scratch.Writer, state);
            scratch.Writer.Flush();
            return scratch.Buffer.WrittenSpan.ToArray();
        }
        finally
        {
            scratch.Buffer.ResetWrittenCount();
            if (scratch.Buffer.Capacity <= MaxKeptBytes)
            {
                t_scratch = scratch;
            }
        }
    }

    private sealed class Scratch
    {
        public Scratch() => Writer = new Utf8JsonWriter(Buffer);

        public ArrayBufferWriter<byte> Buffer { get; } = new(InitialBytes);

        public Utf8JsonWriter Writer { get; }
    }
}
