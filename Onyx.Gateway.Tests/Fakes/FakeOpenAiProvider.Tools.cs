using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;

namespace Onyx.Gateway.Tests.Fakes;

/// <summary>The fake's side of a tool conversation (<see cref="FakeBehavior.ToolConversation"/>).</summary>
public sealed partial class FakeOpenAiProvider
{
    private Task AnswerToolConversationAsync(FakeChatCall call, FakeToolConversation tool)
    {
        var messages = call.Body["messages"] as JsonArray ?? [];
        var callTurn = LastToolCallTurn(messages);
        if (callTurn is null)
        {
            return Offers(call.Body, tool.Name) ? CallToolAsync(call, tool) : WriteAnswerAsync(Plain(call, call.Behavior.Tokens));
        }

        // As OpenAI: every call of the assistant's turn must be answered by a tool message with its id.
        var (turn, ids) = callTurn.Value;
        var results = new List<string>();
        foreach (var id in ids)
        {
            if (ToolResult(messages, turn, id) is not { } result)
            {
                return RefuseAsync(call, $"An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {id}");
            }
            results.Add(result);
        }
        var answer = tool.Answer.Replace(FakeToolConversation.ResultPlaceholder, string.Join("\n", results), StringComparison.Ordinal);
        return WriteAnswerAsync(Plain(call, [.. Words().Matches(answer).Select(m => m.Value)]));
    }

    /// <summary>The call of the tool: streamed in pieces as OpenAI streams one (the existing tool-call stream), or whole.</summary>
    private Task CallToolAsync(FakeChatCall call, FakeToolConversation tool)
    {
        var arguments = tool.Arguments;
        var callBehavior = call.Behavior with { ToolConversation = null, ToolCall = tool.Name, Tokens = [arguments[..(arguments.Length / 2)], arguments[(arguments.Length / 2)..]] };
        var toolCall = new FakeChatCall(call.Context, call.Body, callBehavior, call.Fault, callBehavior.Tokens);
        if (IsStreaming(call.Body))
        {
            return WriteAnswerAsync(toolCall);
        }

        var completion = new JsonObject
        {
            ["id"] = NewId(),
            ["object"] = "chat.completion",
            ["created"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            ["model"] = call.Model,
            ["choices"] = new JsonArray(new JsonObject
            {
                ["index"] = 0,
                ["message"] = new JsonObject
                {
                    ["role"] = "assistant",
                    ["content"] = null,
                    ["tool_calls"] = new JsonArray(new JsonObject
                    {
                        ["id"] = $"call_{Guid.NewGuid():N}",
                        ["type"] = "function",
                        ["function"] = new JsonObject { ["name"] = tool.Name, ["arguments"] = arguments },
                    }),
                    ["refusal"] = null,
                },
                ["logprobs"] = null,
                ["finish_reason"] = "tool_calls",
            }),
            ["usage"] = Usage(toolCall),
            ["system_fingerprint"] = "fp_fake",
        };
        return WriteNonStreamingAsync(toolCall, completion.ToJsonString(WireJson));
    }

    /// <summary>This call, answered as a plain answer of <paramref name="tokens"/>.</summary>
    private static FakeChatCall Plain(FakeChatCall call, IReadOnlyList<string> tokens)
    {
        var behavior = call.Behavior with { ToolConversation = null, ToolCall = null, Tokens = tokens };
        return new FakeChatCall(call.Context, call.Body, behavior, call.Fault, tokens);
    }

    private async Task RefuseAsync(FakeChatCall call, string message)
    {
        call.Response.StatusCode = StatusCodes.Status400BadRequest;
        call.Response.ContentType = "application/json";
        await call.Response.WriteAsync(ErrorBody(message, param: "messages"), call.Aborted);
    }

    private static bool Offers(JsonNode body, string name) =>
        body["tools"] is JsonArray tools && tools.Any(t => (string?)t?["function"]?["name"] == name);

    /// <summary>The index of the last assistant message that calls tools, and the ids of its calls; null when there is none.</summary>
    private static (int Turn, List<string> Ids)? LastToolCallTurn(JsonArray messages)
    {
        for (var i = messages.Count - 1; i >= 0; i--)
        {
            if ((string?)messages[i]?["role"] == "assistant" && messages[i]?["tool_calls"] is JsonArray { Count: > 0 } calls)
            {
                return (i, calls.Select(c => (string?)c?["id"] ?? "").ToList());
            }
        }
        return null;
    }

    /// <summary>The content of the tool message after <paramref name="turn"/> that answers <paramref name="id"/>, or null.</summary>
    private static string? ToolResult(JsonArray messages, int turn, string id)
    {
        foreach (var message in messages.Skip(turn + 1))
        {
            if ((string?)message?["role"] == "tool" && (string?)message["tool_call_id"] == id)
            {
                return message["content"] switch
                {
                    JsonValue text when text.TryGetValue<string>(out var value) => value,
                    JsonArray parts => string.Concat(parts.Select(p => (string?)p?["text"])),
                    _ => "",
                };
            }
        }
        return null;
    }

    /// <summary>Words with the whitespace before them: the pieces a streamed answer arrives in.</summary>
    [GeneratedRegex(@"\s*\S+")]
    private static partial Regex Words();
}
