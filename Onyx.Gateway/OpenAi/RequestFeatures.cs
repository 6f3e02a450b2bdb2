using System.Text.Json;

namespace Onyx.Gateway.OpenAi;

/// <summary>
/// What a chat request asks of the model beyond plain text: tools, images, a response format. Deployments that cannot
/// honour one of them are skipped with the reason rather than answering a degraded request.
/// </summary>
internal static class RequestFeatures
{
    /// <summary>The request offers tools the model may call (<c>tools</c> not empty, and <c>tool_choice</c> is not <c>none</c>).</summary>
    public static bool OffersTools(ChatRequest request) =>
        ChatRequest.TryGetField(request.Body, "tools"u8, out var tools) && tools.ValueKind == JsonValueKind.Array && tools.GetArrayLength() > 0
        && !(ChatRequest.TryGetField(request.Body, "tool_choice"u8, out var choice) && choice.ValueKind == JsonValueKind.String && choice.ValueEquals("none"u8));

    /// <summary>The conversation carries tool calls or tool results (a model without tool support cannot read it faithfully).</summary>
    public static bool HasToolTurns(ChatRequest request)
    {
        foreach (var message in request.Messages.EnumerateArray())
        {
            if (ChatRequest.TryGetField(message, "tool_calls"u8, out _) || ChatRequest.TryGetField(message, "function_call"u8, out _)
                || message.GetProperty("role"u8).ValueEquals("tool"u8) || message.GetProperty("role"u8).ValueEquals("function"u8))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Any message part of type <c>image_url</c>.</summary>
    public static bool HasImages(ChatRequest request) => HasPart(request, "image_url"u8);

    /// <summary>Whether any message carries a content part of <paramref name="type"/>.</summary>
    public static bool HasPart(ChatRequest request, ReadOnlySpan<byte> type)
    {
        foreach (var message in request.Messages.EnumerateArray())
        {
            if (!ChatRequest.TryGetField(message, "content"u8, out var content) || content.ValueKind != JsonValueKind.Array)
            {
                continue;
            }
            foreach (var part in content.EnumerateArray())
            {
                if (part.GetProperty("type"u8).ValueEquals(type))
                {
                    return true;
                }
            }
        }
        return false;
    }

    /// <summary><c>response_format.type</c> (<c>text</c>, <c>json_object</c>, <c>json_schema</c>), or null.</summary>
    public static string? ResponseFormat(ChatRequest request) =>
        ChatRequest.TryGetField(request.Body, "response_format"u8, out var format) && ChatRequest.TryGetField(format, "type"u8, out var type)
            ? type.GetString()
            : null;

    /// <summary>The answer must be a JSON value (<c>json_object</c> or <c>json_schema</c>).</summary>
    public static bool WantsJson(ChatRequest request) => ResponseFormat(request) is "json_object" or "json_schema";

    /// <summary>The client asked for log-probabilities.</summary>
    public static bool WantsLogprobs(ChatRequest request) =>
        ChatRequest.TryGetField(request.Body, "logprobs"u8, out var logprobs) && logprobs.ValueKind == JsonValueKind.True;
}
