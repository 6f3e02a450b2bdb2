using System.Text.Json;

namespace Onyx.Gateway.OpenAi;

/// <summary>The rewrite that continues a broken answer on another deployment.</summary>
internal sealed partial class ChatRequest
{
    /// <summary>
    /// This request with <paramref name="prefill"/> as the start of the assistant's answer (a trailing assistant
    /// message, marked <c>"prefix": true</c> when <paramref name="prefixFlag"/>), and its output limit lowered to
    /// <paramref name="maxTokens"/> when given: the continuation of an answer that broke elsewhere.
    /// </summary>
    public ChatRequest WithPrefill(string prefill, bool prefixFlag, long? maxTokens)
    {
        var bytes = JsonBytes.Write((Body, prefill, prefixFlag, maxTokens), static (json, s) =>
        {
            var (body, prefill, prefixFlag, maxTokens) = s;
            json.WriteStartObject();
            var limited = false;
            foreach (var property in body.EnumerateObject())
            {
                if (maxTokens is { } limit && (property.NameEquals("max_tokens"u8) || property.NameEquals("max_completion_tokens"u8))
                    && property.Value.ValueKind != JsonValueKind.Null)
                {
                    json.WriteNumber(property.Name, limit);
                    limited = true;
                    continue;
                }
                if (!property.NameEquals("messages"u8))
                {
                    property.WriteTo(json);
                    continue;
                }
                json.WriteStartArray("messages"u8);
                foreach (var message in property.Value.EnumerateArray())
                {
                    message.WriteTo(json);
                }
                json.WriteStartObject();
                json.WriteString("role"u8, "assistant"u8);
                json.WriteString("content"u8, prefill);
                if (prefixFlag)
                {
                    json.WriteBoolean("prefix"u8, true);
                }
                json.WriteEndObject();
                json.WriteEndArray();
            }
            if (maxTokens is { } remaining && !limited)
            {
                // The client set no limit, but the deployment's default applies: the continuation gets what is left of it.
                json.WriteNumber("max_tokens"u8, remaining);
            }
            json.WriteEndObject();
        });
        var body = JsonElement.Parse(bytes);
        return new ChatRequest(body, Model, body.GetProperty("messages"u8), Stream, IncludeUsage, User, ProviderParameters);
    }
}
