using System.Text.Json;

namespace Onyx.Gateway.OpenAi;

/// <summary>The OpenAI <c>chat.completion.chunk</c>s the gateway makes itself (from Ollama's lines, and the usage chunk).</summary>
internal static class ChatChunks
{
    /// <summary>An OpenAI chunk. With <paramref name="usage"/> set, the final usage chunk (<c>choices: []</c>).</summary>
    public static byte[] Build(string id, long created, string model, string? role, string? content, string? finishReason, TokenUsage? usage)
    {
        var bytes = JsonBytes.Write((id, created, model, role, content, finishReason, usage), static (json, s) =>
        {
            var (id, created, model, role, content, finishReason, usage) = s;
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
        json.WriteEndObject();
    }
}
