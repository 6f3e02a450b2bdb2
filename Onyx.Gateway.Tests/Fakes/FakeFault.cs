namespace Onyx.Gateway.Tests.Fakes;

/// <summary>
/// What a fake provider does wrong on a chat call. Build one with the static members
/// (<c>FakeFault.Status(429, headers: …)</c>, <c>FakeFault.DropAfter(2)</c>) and set it as the default
/// (<see cref="FakeLlmProvider.Fault"/>) or for the next calls only (<see cref="FakeLlmProvider.FailNext"/>).
/// Faults apply to the chat endpoint only; the discovery endpoints (models, tags, show) always answer.
/// </summary>
public abstract record FakeFault
{
    private FakeFault()
    {
    }

    /// <summary>Answer normally.</summary>
    public static FakeFault None { get; } = new NoFault();

    /// <summary>Never answer (no status line, no headers) until the client aborts the request.</summary>
    public static FakeFault HangBeforeHeaders { get; } = new HangBeforeHeadersFault();

    /// <summary>Send <c>200</c> and the headers, then nothing until the client aborts the request.</summary>
    public static FakeFault HeadersThenHang { get; } = new HeadersThenHangFault();

    /// <summary>The first data event (OpenAI) / first line (Ollama) is not valid JSON; the rest of the stream follows.</summary>
    public static FakeFault MalformedChunk { get; } = new MalformedChunkFault();

    /// <summary>The first event / line is an error object, then the stream ends (non-streaming: a 200 whose body is the error).</summary>
    public static FakeFault ErrorFirstEvent { get; } = new ErrorFirstEventFault();

    /// <summary>The stream carries every token and the finish (and usage) chunk, but ends without <c>data: [DONE]</c> / the <c>done:true</c> line.</summary>
    public static FakeFault EndWithoutDone { get; } = new EndWithoutDoneFault();

    /// <summary>The whole answer, finish reason and usage included, then the connection held open: no <c>[DONE]</c>, no close.</summary>
    public static FakeFault HangAfterFinish { get; } = new HangAfterFinishFault();

    /// <summary>The provider reports no usage (OpenAI: no usage object even when asked; Ollama: no eval counts or durations).</summary>
    public static FakeFault NoUsage { get; } = new NoUsageFault();

    /// <summary>Answer with this status, an optional body (default: a protocol-shaped error) and optional headers.</summary>
    public static FakeFault Status(int statusCode, string? body = null, IReadOnlyDictionary<string, string>? headers = null) =>
        new StatusFault(statusCode, body, headers ?? new Dictionary<string, string>());

    /// <summary>Delay the first content token (non-streaming: the whole answer) by <paramref name="delay"/>.</summary>
    public static FakeFault SlowFirstToken(TimeSpan delay) => new SlowFirstTokenFault(delay);

    /// <summary>After <paramref name="tokens"/> content tokens, abort the connection (non-streaming: cut the body half way).</summary>
    public static FakeFault DropAfter(int tokens) => new DropAfterFault(tokens);

    /// <summary>After <paramref name="tokens"/> content tokens, send nothing more until the client aborts (non-streaming: stall half way through the body).</summary>
    public static FakeFault StallAfter(int tokens) => new StallAfterFault(tokens);

    /// <summary>After <paramref name="tokens"/> content tokens, one event / line that is not valid JSON, then the rest of the stream.</summary>
    public static FakeFault MalformedAfter(int tokens) => new MalformedAfterFault(tokens);

    /// <summary>After <paramref name="tokens"/> content tokens, send an in-band error event / line, then end the stream.</summary>
    public static FakeFault ErrorLineAfter(int tokens) => new ErrorLineAfterFault(tokens);

    public sealed record NoFault : FakeFault;

    public sealed record HangBeforeHeadersFault : FakeFault;

    public sealed record HeadersThenHangFault : FakeFault;

    public sealed record MalformedChunkFault : FakeFault;

    public sealed record ErrorFirstEventFault : FakeFault;

    public sealed record EndWithoutDoneFault : FakeFault;

    public sealed record HangAfterFinishFault : FakeFault;

    public sealed record NoUsageFault : FakeFault;

    public sealed record StatusFault(int StatusCode, string? Body, IReadOnlyDictionary<string, string> Headers) : FakeFault;

    public sealed record SlowFirstTokenFault(TimeSpan Delay) : FakeFault;

    public sealed record DropAfterFault(int Tokens) : FakeFault;

    public sealed record StallAfterFault(int Tokens) : FakeFault;

    public sealed record ErrorLineAfterFault(int Tokens) : FakeFault;

    public sealed record MalformedAfterFault(int Tokens) : FakeFault;
}
