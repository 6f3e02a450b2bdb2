using System.Buffers;
using System.Net.ServerSentEvents;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;
using Onyx.Gateway.Routing;

namespace Onyx.Gateway.Api;

/// <summary>An OpenAI-shaped error response.</summary>
internal sealed class OpenAiErrorResult(int statusCode, OpenAiError error, TimeSpan? retryAfter = null) : IResult, IStatusCodeHttpResult
{
    public int? StatusCode => statusCode;

    public OpenAiError Error => error;

    public Task ExecuteAsync(HttpContext httpContext)
    {
        httpContext.Response.StatusCode = statusCode;
        if (retryAfter is { } wait)
        {
            httpContext.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        return httpContext.Response.WriteAsJsonAsync(new OpenAiErrorEnvelope(error), OpenAiJsonContext.Default.OpenAiErrorEnvelope);
    }
}

/// <summary>
/// A streamed answer as OpenAI sends it: <c>data: {chunk}</c> events, flushed one by one, ending in
/// <c>data: [DONE]</c> — or, when the upstream fails mid-answer, in an error event and no <c>[DONE]</c>, so no
/// client mistakes a cut answer for a complete one.
/// </summary>
internal sealed class ChatStreamResult(RoutedStream stream) : IResult
{
    private static readonly ReadOnlyMemory<byte> Done = "[DONE]"u8.ToArray();

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        await using var _ = stream;
        var response = httpContext.Response;
        ChatCompletionsApi.AddRouteHeaders(response, stream.Route);
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        httpContext.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        await response.StartAsync(httpContext.RequestAborted);

        try
        {
            await SseFormatter.WriteAsync(Events(httpContext.RequestAborted), response.Body,
                static (item, writer) => writer.Write(item.Data.Span), httpContext.RequestAborted);
        }
        catch (OperationCanceledException) when (httpContext.RequestAborted.IsCancellationRequested)
        {
            // The client went away; disposing the stream cancels the upstream and logs the call.
        }
    }

    private async IAsyncEnumerable<SseItem<ReadOnlyMemory<byte>>> Events([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var chunks = stream.ReadAsync(cancellationToken).GetAsyncEnumerator(cancellationToken);
        while (true)
        {
            UpstreamException? failure = null;
            try
            {
                if (!await chunks.MoveNextAsync())
                {
                    break;
                }
            }
            catch (UpstreamException ex)
            {
                failure = ex;
            }
            if (failure is not null)
            {
                yield return new SseItem<ReadOnlyMemory<byte>>(ErrorEvent(failure));
                yield break;
            }
            yield return new SseItem<ReadOnlyMemory<byte>>(chunks.Current);
        }
        yield return new SseItem<ReadOnlyMemory<byte>>(Done);
    }

    private static byte[] ErrorEvent(UpstreamException failure) => JsonSerializer.SerializeToUtf8Bytes(
        new OpenAiErrorEnvelope(new OpenAiError(
            $"The answer was interrupted: {failure.Message}. The text received so far is incomplete.",
            OpenAiErrorTypes.Upstream, null, "stream_interrupted")),
        OpenAiJsonContext.Default.OpenAiErrorEnvelope);
}
