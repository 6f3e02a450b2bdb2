using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Onyx.Gateway.Tests.Fakes;

/// <summary>
/// A fake OpenAI-compatible provider (Together AI, OpenAI, vLLM, …): <c>POST {BaseUrl}/chat/completions</c>
/// (JSON or SSE) and <c>GET {BaseUrl}/models</c>, on a real loopback port.
/// </summary>
public sealed partial class FakeOpenAiProvider : FakeLlmProvider
{
    private FakeOpenAiProvider(FakeBehavior defaults)
        : base(defaults)
    {
    }

    /// <summary><c>http://127.0.0.1:PORT/v1</c>: what an OpenAI client takes as its endpoint.</summary>
    public override Uri BaseUrl => new(RootUrl, "v1");

    private protected override string ChatPath => "/v1/chat/completions";

    private protected override string StreamContentType => "text/event-stream; charset=utf-8";

    private protected override string InBandErrorJson => """{"error":{"message":"upstream overloaded","type":"server_error"}}""";

    /// <summary>Starts a fake on a free loopback port; <paramref name="defaults"/> is what <see cref="FakeLlmProvider.Reset"/> restores.</summary>
    public static Task<FakeOpenAiProvider> StartAsync(FakeBehavior? defaults = null) =>
        StartAsync(new FakeOpenAiProvider(defaults ?? new FakeBehavior()));

    /// <summary>An OpenAI error body: <c>{"error":{"message","type","param","code"}}</c>.</summary>
    public static string ErrorBody(string message, string type = "invalid_request_error", string? param = null, string? code = null) =>
        new JsonObject
        {
            ["error"] = new JsonObject
            {
                ["message"] = message,
                ["type"] = type,
                ["param"] = param,
                ["code"] = code,
            },
        }.ToJsonString(WireJson);

    private protected override string ErrorJson(int statusCode, string message) => statusCode switch
    {
        StatusCodes.Status401Unauthorized => ErrorBody(message, "invalid_request_error", code: "invalid_api_key"),
        StatusCodes.Status404NotFound => ErrorBody(message, "invalid_request_error", "model", "model_not_found"),
        StatusCodes.Status429TooManyRequests => ErrorBody(message, "requests", code: "rate_limit_exceeded"),
        < 500 => ErrorBody(message),
        _ => ErrorBody(message, "server_error"),
    };

    private protected override bool IsStreaming(JsonNode body) =>
        body["stream"] is JsonValue value && value.TryGetValue<bool>(out var stream) && stream;

    private protected override void MapEndpoints(WebApplication app) =>
        app.MapGet("/v1/models", (HttpContext context) =>
        {
            var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            var data = new JsonArray();
            foreach (var model in Behavior.Models)
            {
                data.Add(new JsonObject { ["id"] = model, ["object"] = "model", ["created"] = created, ["owned_by"] = "fake" });
            }

            context.Response.ContentType = "application/json";
            return context.Response.WriteAsync(new JsonObject { ["object"] = "list", ["data"] = data }.ToJsonString(WireJson), context.RequestAborted);
        });

    private protected override Task WriteAnswerAsync(FakeChatCall call) =>
        call.Behavior.ToolConversation is { } tool ? AnswerToolConversationAsync(call, tool)
        : IsStreaming(call.Body) ? StreamAsync(call) : WriteNonStreamingAsync(call, Completion(call));

    private static string Completion(FakeChatCall call)
    {
        var completion = new JsonObject
        {
            ["id"] = NewId(),
            ["object"] = "chat.completion",
            ["created"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            ["model"] = call.Model,
            ["choices"] = new JsonArray(new JsonObject
            {
                ["index"] = 0,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = call.Text, ["refusal"] = null },
                ["logprobs"] = null,
                ["finish_reason"] = "stop",
            }),
        };
        if (call.ReportsUsage)
        {
            completion["usage"] = Usage(call);
        }

        completion["system_fingerprint"] = "fp_fake";
        return completion.ToJsonString(WireJson);
    }

    private async Task StreamAsync(FakeChatCall call)
    {
        var id = NewId();
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var includeUsage = call.Body["stream_options"]?["include_usage"] is JsonValue value && value.TryGetValue<bool>(out var include) && include;

        JsonObject Chunk(JsonObject? delta, string? finishReason)
        {
            var chunk = new JsonObject
            {
                ["id"] = id,
                ["object"] = "chat.completion.chunk",
                ["created"] = created,
                ["model"] = call.Model,
                ["system_fingerprint"] = "fp_fake",
                ["choices"] = delta is null
                    ? new JsonArray()
                    : new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["logprobs"] = null, ["finish_reason"] = finishReason }),
            };
            if (includeUsage)
            {
                // With include_usage OpenAI sends "usage": null on every chunk but the last.
                chunk["usage"] = null;
            }

            return chunk;
        }

        Task Event(string data) => call.WriteAsync($"data: {data}\n\n");

        await call.StartAsync(StreamContentType);

        if (call.Fault is FakeFault.ErrorFirstEventFault)
        {
            await Event(InBandErrorJson);
            return;
        }

        if (call.Fault is FakeFault.MalformedChunkFault)
        {
            await Event("""{"id":"chatcmpl-malformed","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":""");
        }

        await Event(Chunk(new JsonObject { ["role"] = "assistant", ["content"] = "", ["refusal"] = null }, null).ToJsonString(WireJson));

        foreach (var thought in call.Behavior.Reasoning)
        {
            await Event(Chunk(new JsonObject { ["reasoning_content"] = thought }, null).ToJsonString(WireJson));
        }

        var toolCall = call.Behavior.ToolCall;
        var first = true;
        var complete = await StreamTokensAsync(
            call,
            token =>
            {
                // A tool call streams its arguments, as OpenAI does: the call's id and name come with the first piece.
                var delta = toolCall is null
                    ? new JsonObject { ["content"] = token }
                    : new JsonObject
                    {
                        ["tool_calls"] = new JsonArray(first
                            ? new JsonObject { ["index"] = 0, ["id"] = "call_fake", ["type"] = "function", ["function"] = new JsonObject { ["name"] = toolCall, ["arguments"] = token } }
                            : new JsonObject { ["index"] = 0, ["function"] = new JsonObject { ["arguments"] = token } }),
                    };
                first = false;
                return Event(Chunk(delta, null).ToJsonString(WireJson));
            },
            () => Event(InBandErrorJson),
            () => Event("""{"id":"chatcmpl-malformed","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"""));
        if (!complete)
        {
            return;
        }

        await Event(Chunk(new JsonObject(), toolCall is null ? "stop" : "tool_calls").ToJsonString(WireJson));

        if (includeUsage && call.ReportsUsage)
        {
            var usage = Chunk(null, null);
            usage["usage"] = Usage(call);
            await Event(usage.ToJsonString(WireJson));
        }

        if (call.Fault is FakeFault.HangAfterFinishFault)
        {
            await call.HangAsync();
        }
        else if (call.Fault is not FakeFault.EndWithoutDoneFault)
        {
            await Event("[DONE]");
        }
    }

    private static JsonObject Usage(FakeChatCall call)
    {
        var usage = Counts(call);
        if (call.Behavior.CachedPromptTokens > 0)
        {
            usage["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = call.Behavior.CachedPromptTokens };
        }
        return usage;
    }

    private static JsonObject Counts(FakeChatCall call) => call.Behavior.FractionalUsage
        ? new()
        {
            ["prompt_tokens"] = (double)call.Behavior.PromptTokens,
            ["completion_tokens"] = (double)call.Tokens.Count,
            ["total_tokens"] = (double)(call.Behavior.PromptTokens + call.Tokens.Count),
        }
        : new()
        {
            ["prompt_tokens"] = call.Behavior.PromptTokens,
            ["completion_tokens"] = call.Tokens.Count,
            ["total_tokens"] = call.Behavior.PromptTokens + call.Tokens.Count,
        };

    private static string NewId() => $"chatcmpl-{Guid.NewGuid():N}";
}
