using System.ClientModel;
using System.Collections.Concurrent;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.AI;

namespace Onyx.Sample.Chat;

/// <summary>What the sample asks the gateway, one endpoint per way of asking.</summary>
internal static class ChatApi
{
    public static IEndpointRouteBuilder MapChatApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/ask", AskAsync);
        app.MapGet("/ask/stream", AskStreamingAsync);
        app.MapGet("/tool", AskWithToolAsync);
        return app;
    }

    /// <summary><c>GET /ask?q=…</c>: one answer, whole.</summary>
    public static async Task<Results<Ok<Answer>, ProblemHttpResult>> AskAsync(string q, IChatClient chat, CancellationToken cancellationToken)
    {
        try
        {
            var response = await chat.GetResponseAsync(q, cancellationToken: cancellationToken);
            return TypedResults.Ok(Answer.From(response, []));
        }
        catch (ClientResultException ex)
        {
            return GatewayRefused(ex);
        }
    }

    /// <summary>
    /// <c>GET /ask/stream?q=…</c>: the answer as server-sent events, a <c>delta</c> event per piece of text as the
    /// gateway streams it, then one <c>done</c> event (<c>{"model","finishReason"}</c>). A stream without <c>done</c>
    /// was cut short.
    /// </summary>
    public static async Task<Results<ServerSentEventsResult<string>, ProblemHttpResult>> AskStreamingAsync(string q, IChatClient chat, CancellationToken cancellationToken)
    {
        var updates = chat.GetStreamingResponseAsync(q, cancellationToken: cancellationToken).GetAsyncEnumerator(cancellationToken);
        bool any;
        try
        {
            // The first update before the response starts: a refusal is still a clean error status here.
            any = await updates.MoveNextAsync();
        }
        catch (ClientResultException ex)
        {
            await updates.DisposeAsync();
            return GatewayRefused(ex);
        }
        return TypedResults.ServerSentEvents(Events(updates, any, cancellationToken));
    }

    private static async IAsyncEnumerable<SseItem<string>> Events(IAsyncEnumerator<ChatResponseUpdate> updates, bool any,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var _ = updates;
        string? model = null;
        string? finishReason = null;
        for (var more = any; more; more = await updates.MoveNextAsync())
        {
            cancellationToken.ThrowIfCancellationRequested();
            var update = updates.Current;
            model ??= update.ModelId;
            finishReason = update.FinishReason?.Value ?? finishReason;
            if (update.Text is { Length: > 0 } text)
            {
                yield return new SseItem<string>(text, "delta");
            }
        }
        yield return new SseItem<string>(JsonSerializer.Serialize(new { model, finishReason }, JsonSerializerOptions.Web), "done");
    }

    /// <summary>
    /// <c>GET /tool?q=…</c>: the model is offered one function, <c>get_weather(city)</c>; when it calls it, the chat
    /// client runs it and sends the result back, and the model answers with it. The answer lists each call as it ran.
    /// </summary>
    public static async Task<Results<Ok<Answer>, ProblemHttpResult>> AskWithToolAsync(string q, IChatClient chat, CancellationToken cancellationToken)
    {
        var invocations = new ConcurrentQueue<ToolInvocation>();
        var weather = AIFunctionFactory.Create(
            (string city) =>
            {
                var result = Weather.For(city);
                invocations.Enqueue(new ToolInvocation("get_weather", new Dictionary<string, string> { ["city"] = city }, result));
                return result;
            },
            "get_weather",
            "The current weather in a city.");
        try
        {
            var response = await chat.GetResponseAsync(q, new ChatOptions { Tools = [weather] }, cancellationToken);
            return TypedResults.Ok(Answer.From(response, [.. invocations]));
        }
        catch (ClientResultException ex)
        {
            return GatewayRefused(ex);
        }
    }

    /// <summary>The gateway said no (a 4xx/5xx after the SDK's retries): a 502 that passes its status and message on.</summary>
    private static ProblemHttpResult GatewayRefused(ClientResultException ex) =>
        TypedResults.Problem(detail: ex.Message, statusCode: StatusCodes.Status502BadGateway, title: $"The gateway answered {ex.Status}.");
}

/// <summary>What the model said, which model said it, why it stopped, and the tools it had run on the way.</summary>
internal sealed record Answer(string Text, string? Model, string? FinishReason, IReadOnlyList<ToolInvocation> ToolCalls)
{
    public static Answer From(ChatResponse response, IReadOnlyList<ToolInvocation> toolCalls) =>
        new(response.Text, response.ModelId, response.FinishReason?.Value, toolCalls);
}

/// <summary>One run of a tool: its name, the arguments the model gave it, and what it returned.</summary>
internal sealed record ToolInvocation(string Name, IReadOnlyDictionary<string, string> Arguments, string Result);

/// <summary>A stand-in for a weather service, so the sample runs anywhere: the same answer for a city every time.</summary>
internal static class Weather
{
    public static string For(string city) => $"{city}: 18 C, light rain";
}
