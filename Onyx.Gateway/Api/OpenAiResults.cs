using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Onyx.Gateway.Health;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;
using Onyx.Gateway.Routing;

namespace Onyx.Gateway.Api;

/// <summary>An OpenAI-shaped error response.</summary>
internal sealed class OpenAiErrorResult(int statusCode, OpenAiError error, TimeSpan? retryAfter = null) : IResult, IStatusCodeHttpResult
{
    public int? StatusCode => statusCode;

    public OpenAiError Error => error;

    public Task ExecuteAsync(HttpContext httpContext) => OpenAiErrorWriter.WriteAsync(httpContext, statusCode, error, retryAfter);
}

/// <summary>
/// A streamed answer as OpenAI sends it: <c>data: {chunk}</c> events ending in <c>data: [DONE]</c> — or, when
/// the upstream fails mid-answer or a shutdown's drain limit cuts it, in an error event and no <c>[DONE]</c>, so no
/// client mistakes a cut answer for a complete one. Events are flushed as soon as the upstream has nothing more
/// ready, never held back.
/// </summary>
internal sealed class ChatStreamResult(RoutedStream stream) : IResult
{
    private static readonly byte[] DrainLimitEvent = JsonSerializer.SerializeToUtf8Bytes(
        new OpenAiErrorEnvelope(new OpenAiError(
            "The answer was interrupted: the gateway is shutting down and this stream outlived its drain limit. The text received so far is incomplete.",
            OpenAiErrorTypes.ServiceUnavailable, null, "stream_interrupted")),
        OpenAiJsonContext.Default.OpenAiErrorEnvelope);

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        await using var _ = stream;
        var response = httpContext.Response;
        ChatCompletionsApi.AddRouteHeaders(response, stream.Route);
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        httpContext.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();

        var aborted = httpContext.RequestAborted;
        var writer = response.BodyWriter;
        try
        {
            await using var chunks = stream.ReadAsync(aborted).GetAsyncEnumerator(aborted);
            while (true)
            {
                var next = chunks.MoveNextAsync();
                if (!next.IsCompleted)
                {
                    // Nothing more is ready upstream: send what is written (the headers go with the first flush).
                    await writer.FlushAsync(aborted);
                }
                bool more;
                try
                {
                    more = await next;
                }
                catch (UpstreamException failure)
                {
                    SseWriter.WriteEvent(writer, ErrorEvent(failure));
                    break;
                }
                if (!more)
                {
                    foreach (var resume in stream.Resumes)
                    {
                        // A comment line: SSE clients ignore it, people and tools reading the stream see it. Where
                        // the protocol carries trailers (HTTP/2, HTTP/3), a trailer says it too.
                        var where = $"from={resume.From} to={resume.To} at_chars={resume.AtChars} reason={resume.Reason} how={resume.How}";
                        SseWriter.WriteComment(writer, "onyx-resumed " + where);
                        if (response.SupportsTrailers())
                        {
                            response.AppendTrailer("x-onyx-resumed", where);
                        }
                    }
                    SseWriter.WriteEvent(writer, SseWriter.Done);
                    break;
                }
                SseWriter.WriteEvent(writer, chunks.Current.Span);
            }
            await writer.FlushAsync(aborted);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            // The client went away, or the gateway is shutting down and reached its drain limit; disposing the stream
            // cancels the upstream and logs the call. A client that is still there is told its answer is cut.
            if (httpContext.Features.Get<ShutdownDrainFeature>() is { EndedAtDrainLimit: true } drain)
            {
                SseWriter.WriteEvent(writer, DrainLimitEvent);
                await writer.FlushAsync(drain.ClientAborted);
            }
        }
    }

    private static byte[] ErrorEvent(UpstreamException failure) => JsonSerializer.SerializeToUtf8Bytes(
        new OpenAiErrorEnvelope(new OpenAiError(
            $"The answer was interrupted: {failure.Message}. The text received so far is incomplete.",
            OpenAiErrorTypes.Upstream, null, "stream_interrupted")),
        OpenAiJsonContext.Default.OpenAiErrorEnvelope);
}
