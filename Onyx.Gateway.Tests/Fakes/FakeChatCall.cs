using System.Net.Sockets;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;

namespace Onyx.Gateway.Tests.Fakes;

/// <summary>One chat call being answered: the request, the behaviour and fault chosen for it, and the write helpers.</summary>
internal sealed class FakeChatCall(HttpContext context, JsonNode body, FakeBehavior behavior, FakeFault fault, IReadOnlyList<string> tokens)
{
    /// <summary>The tokens this call answers with: the behaviour's, or what is left of them after an honoured prefill.</summary>
    public IReadOnlyList<string> Tokens { get; } = tokens;

    /// <summary>This call's answer text.</summary>
    public string Text => string.Concat(Tokens);

    public HttpContext Context { get; } = context;

    public HttpResponse Response => Context.Response;

    public JsonNode Body { get; } = body;

    public FakeBehavior Behavior { get; } = behavior;

    public FakeFault Fault { get; } = fault;

    public CancellationToken Aborted { get; } = context.RequestAborted;

    /// <summary>True once the fake itself cut the connection (so it is not counted as a client cancellation).</summary>
    public bool SelfAborted { get; private set; }

    /// <summary>The model the answer names: the configured response model, else the one requested.</summary>
    public string Model =>
        Behavior.ResponseModel
        ?? (Body["model"] is JsonValue value && value.TryGetValue<string>(out var model) ? model : "fake-model");

    public bool ReportsUsage => Fault is not FakeFault.NoUsageFault;

    /// <summary>
    /// Cuts the connection mid-answer: a FIN right after the bytes already flushed, so the client reads every one of
    /// them and then an unexpected end of the response. (A plain <see cref="HttpContext.Abort"/> closes the socket
    /// abortively, and the RST makes the client's kernel discard bytes it has not read yet: "after n tokens" would
    /// become "after anywhere between 0 and n tokens".) Returns once the client has closed its side.
    /// </summary>
    public async Task CutConnectionAsync()
    {
        SelfAborted = true;
        if (Context.Features.Get<IConnectionSocketFeature>()?.Socket is { } socket)
        {
            try
            {
                socket.Shutdown(SocketShutdown.Send);
                await Task.Delay(Timeout.Infinite, Aborted);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                // The client saw the end and went away (or the socket is already gone).
            }
        }

        Context.Abort();
    }

    /// <summary>Wait until the client goes away; throws <see cref="OperationCanceledException"/> then.</summary>
    public Task HangAsync() => Task.Delay(Timeout.Infinite, Aborted);

    public Task DelayAsync(TimeSpan delay) => delay > TimeSpan.Zero ? Task.Delay(delay, Aborted) : Task.CompletedTask;

    /// <summary>Writes straight to the response body and flushes, so the client sees it now.</summary>
    public async Task WriteAsync(string text)
    {
        Aborted.ThrowIfCancellationRequested();
        await Response.WriteAsync(text, Aborted);
        await Response.Body.FlushAsync(Aborted);
    }

    public async Task StartAsync(string contentType)
    {
        Response.StatusCode = StatusCodes.Status200OK;
        Response.ContentType = contentType;
        if (!contentType.StartsWith("application/json", StringComparison.Ordinal))
        {
            Response.Headers.CacheControl = "no-cache";
        }

        await Response.StartAsync(Aborted);
        await Response.Body.FlushAsync(Aborted);
    }
}
