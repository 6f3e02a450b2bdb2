using System.Text.Json;

namespace Onyx.Gateway.OpenAi;

/// <summary>
/// One tool call as an OpenAI answer shows it: <c>{"id","type":"function","function":{"name","arguments"}}</c>, with
/// <paramref name="Arguments"/> the JSON text of the arguments (OpenAI sends them as a string, not an object) and
/// <paramref name="Index"/> its place among the answer's calls (streamed deltas carry it).
/// </summary>
internal readonly record struct ToolCall(int Index, string Id, string Name, string Arguments);

/// <summary>The OpenAI <c>chat.completion.chunk</c>s the gateway makes itself (from Ollama's lines, and the usage chunk).</summary>
internal static class ChatChunks
{
    /// <summary>
    /// An OpenAI chunk. With <paramref name="usage"/> set, the final usage chunk (<c>choices: []</c>).
    /// <paramref name="reasoning"/> goes in the delta's <c>reasoning_content</c>, <paramref name="toolCalls"/> in its
    /// <c>tool_calls</c>, each whole (with its id and name) rather than in pieces.
    /// </summary>
    public static byte[] Build(string id, long created, string model, string? role, string? content, string? finishReason, TokenUsage? usage,
        string? reasoning = null, IReadOnlyList<ToolCall>? toolCalls = null)
    {
        var bytes = JsonBytes.Write((id, created, model, role, content, finishReason, usage, reasoning, toolCalls), static (json, s) =>
        {
            var (id, created, model, role, content, finishReason, usage, reasoning, toolCalls) = s;
            json.WriteStartObject();
            json.WriteString("id", id);
            json.WriteString("object", "chat.completion.chunk");
            json.WriteNumber("created", created);
            json.WriteString("model", model);
            json.WriteStartArray("choices");
            if (usage is null)
            {
                json.WriteStartObject();
                json.WriteNumber("index", 0);
                json.WriteStartObject("delta");
                if (role is not null)
                {
                    json.WriteString("role", role);
                }
                if (content is not null)
                {
                    json.WriteString("content", content);
                }
                if (reasoning is not null)
                {
                    json.WriteString("reasoning_content", reasoning);
                }
                if (toolCalls is not null)
                {
                    WriteToolCalls(json, toolCalls, withIndex: true);
                }
                json.WriteEndObject();
                if (finishReason is null)
                {
                    json.WriteNull("finish_reason");
                }
                else
                {
                    json.WriteString("finish_reason", finishReason);
                }
                json.WriteEndObject();
            }
            json.WriteEndArray();
            if (usage is { } u)
            {
                WriteUsage(json, u);
            }
            json.WriteEndObject();
        });
        return bytes;
    }

    public static void WriteUsage(Utf8JsonWriter json, TokenUsage usage)
    {
        json.WriteStartObject("usage");
        json.WriteNumber("prompt_tokens", usage.Prompt);
        json.WriteNumber("completion_tokens", usage.Completion);
        json.WriteNumber("total_tokens", usage.Total);
        if (usage.CachedPrompt > 0)
        {
            json.WriteStartObject("prompt_tokens_details");
            json.WriteNumber("cached_tokens", usage.CachedPrompt);
            json.WriteEndObject();
        }
        json.WriteEndObject();
    }

    /// <summary>
    /// <c>"tool_calls":[…]</c>. A streamed delta numbers its calls (<paramref name="withIndex"/>), so a client can put
    /// pieces of one call together; a whole message does not.
    /// </summary>
    public static void WriteToolCalls(Utf8JsonWriter json, IReadOnlyList<ToolCall> toolCalls, bool withIndex)
    {
        json.WriteStartArray("tool_calls");
        foreach (var call in toolCalls)
        {
            json.WriteStartObject();
            if (withIndex)
            {
                json.WriteNumber("index", call.Index);
            }
            json.WriteString("id", call.Id);
            json.WriteString("type", "function");
            json.WriteStartObject("function");
            json.WriteString("name", call.Name);
            json.WriteString("arguments", call.Arguments);
            json.WriteEndObject();
            json.WriteEndObject();
        }
        json.WriteEndArray();
    }
}
