using System.Buffers;
using System.IO.Pipelines;

namespace Onyx.Gateway.OpenAi;

/// <summary>
/// Writes OpenAI's SSE framing (<c>data: {json}\n\n</c>) straight into the response's <see cref="PipeWriter"/>.
/// </summary>
/// <remarks>
/// Hand-written rather than <c>SseFormatter</c>, which writes and flushes every event on its own: the gateway
/// flushes when the upstream has nothing more ready (see <c>ChatStreamResult</c>), so the response headers, the
/// first chunks and any burst of chunks leave in one packet, while a paced stream is still flushed chunk by chunk
/// — the way YARP forwards bodies.
/// </remarks>
internal static class SseWriter
{
    private static ReadOnlySpan<byte> DataPrefix => "data: "u8;

    public static ReadOnlySpan<byte> Done => "[DONE]"u8;

    public static void WriteEvent(PipeWriter writer, ReadOnlySpan<byte> data)
    {
        // An event's data may not hold a raw line break: each line gets its own "data:" field.
        while (true)
        {
            var newline = data.IndexOf((byte)'\n');
            var line = newline < 0 ? data : data[..newline];
            var span = writer.GetSpan(DataPrefix.Length + line.Length + 2);
            DataPrefix.CopyTo(span);
            line.CopyTo(span[DataPrefix.Length..]);
            span[DataPrefix.Length + line.Length] = (byte)'\n';
            writer.Advance(DataPrefix.Length + line.Length + 1);
            if (newline < 0)
            {
                break;
            }
            data = data[(newline + 1)..];
        }
        writer.Write("\n"u8);
    }

    /// <summary>An SSE comment (<c>: text</c>), which clients skip; line breaks in <paramref name="text"/> become spaces.</summary>
    public static void WriteComment(PipeWriter writer, string text)
    {
        writer.Write(": "u8);
        writer.Write(System.Text.Encoding.UTF8.GetBytes(text.ReplaceLineEndings(" ")));
        writer.Write("\n\n"u8);
    }
}
