using System.Text;
using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Providers;

/// <summary>One adapter per upstream wire protocol. Both directions speak OpenAI's shapes to the caller.</summary>
internal interface IChatProvider
{
    ProviderProtocol Protocol { get; }

    /// <summary>
    /// Why <paramref name="deployment"/> cannot serve <paramref name="request"/> faithfully (a field it would have to
    /// drop or change), or null when it can. A deployment that cannot is skipped with this reason.
    /// </summary>
    string? CannotServe(Deployment deployment, ChatRequest request);

    /// <summary>A non-streaming completion as an OpenAI <c>chat.completion</c> body.</summary>
    /// <exception cref="UpstreamException">The upstream failed or answered something unusable.</exception>
    Task<CompletionResult> CompleteAsync(Deployment deployment, ChatRequest request, AttemptContext context, CancellationToken cancellationToken);

    /// <summary>
    /// OpenAI <c>chat.completion.chunk</c>s, in order. Ends after the upstream's last chunk (<c>[DONE]</c>, or a
    /// finish reason followed by the end of the stream); throws <see cref="UpstreamException"/> on any failure.
    /// </summary>
    IAsyncEnumerable<StreamChunk> StreamAsync(Deployment deployment, ChatRequest request, AttemptContext context, CancellationToken cancellationToken);
}

/// <summary>One chunk of a stream: its JSON bytes, forwarded as they are, and what they carry.</summary>
internal readonly record struct StreamChunk(ReadOnlyMemory<byte> Json, ChunkInfo Info);

/// <summary>A non-streaming answer.</summary>
internal sealed record CompletionResult(byte[] Body, TokenUsage? Usage, string? ResponseModel, string? CompletionText);

/// <summary>Per-attempt state a provider reports into.</summary>
internal sealed class AttemptContext(string requestId)
{
    public string RequestId { get; } = requestId;

    /// <summary>The answer's text so far, for counting tokens when the provider reports no usage.</summary>
    public StringBuilder CompletionText { get; } = new();

    /// <summary>The model name the upstream reported.</summary>
    public string? ResponseModel { get; set; }

    /// <summary>
    /// The upstream answered with response headers. A deployment that never did is silent (never retried, and its
    /// time-out counts against its breaker); one that did but sent no token in time is slow.
    /// </summary>
    public bool HeadersReceived { get; set; }

    /// <summary>The attempt's span (null when nobody listens); the upstream HTTP request's span is its child.</summary>
    public System.Diagnostics.Activity? Activity { get; init; }
}
