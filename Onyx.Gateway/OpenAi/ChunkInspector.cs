using System.Buffers;
using System.Text;
using System.Text.Json;

namespace Onyx.Gateway.OpenAi;

/// <summary>What the gateway needs to know about one <c>chat.completion.chunk</c>.</summary>
internal readonly record struct ChunkInfo(bool HasContent, bool HasFinishReason, bool ChoicesEmpty, TokenUsage? Usage, bool IsError, bool HasToolCall = false,
    bool HasReasoning = false, bool HasLogprobs = false);

/// <summary>
/// Reads an OpenAI stream chunk with <see cref="Utf8JsonReader"/> — no DOM, no allocation — to learn whether it
/// carries content, a finish reason, usage or an error. The chunk's bytes are forwarded unchanged.
/// </summary>
internal static class ChunkInspector
{
    /// <param name="completionText">When given, the delta text is appended (for token estimation).</param>
    /// <exception cref="JsonException">The chunk is not valid JSON.</exception>
    public static ChunkInfo Inspect(ReadOnlySpan<byte> json, StringBuilder? completionText = null)
    {
        var reader = new Utf8JsonReader(json);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("A stream chunk must be a JSON object.");
        }
        bool hasContent = false, hasFinish = false, choicesEmpty = false, isError = false, hasToolCall = false, hasReasoning = false, hasLogprobs = false;
        TokenUsage? usage = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("choices"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartArray)
                {
                    reader.Skip();
                    continue;
                }
                var count = 0;
                while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
                {
                    count++;
                    ReadChoice(ref reader, completionText, ref hasContent, ref hasFinish, ref hasToolCall, ref hasReasoning, ref hasLogprobs);
                }
                choicesEmpty = count == 0;
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                usage = reader.TokenType == JsonTokenType.StartObject ? ReadUsage(ref reader) : SkipValue(ref reader);
            }
            else if (reader.ValueTextEquals("error"u8))
            {
                reader.Read();
                isError = reader.TokenType != JsonTokenType.Null;
                reader.Skip();
            }
            else
            {
                reader.Skip();
            }
        }
        return new ChunkInfo(hasContent, hasFinish, choicesEmpty, usage, isError, hasToolCall, hasReasoning, hasLogprobs);
    }

    private static TokenUsage? SkipValue(ref Utf8JsonReader reader)
    {
        reader.Skip();
        return null;
    }

    private static void ReadChoice(ref Utf8JsonReader reader, StringBuilder? completionText, ref bool hasContent, ref bool hasFinish, ref bool hasToolCall,
        ref bool hasReasoning, ref bool hasLogprobs)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("finish_reason"u8))
            {
                reader.Read();
                hasFinish |= reader.TokenType == JsonTokenType.String;
            }
            else if (reader.ValueTextEquals("logprobs"u8))
            {
                reader.Read();
                hasLogprobs |= reader.TokenType == JsonTokenType.StartObject;
                reader.Skip();
            }
            else if (reader.ValueTextEquals("delta"u8) || reader.ValueTextEquals("message"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var isContent = reader.ValueTextEquals("content"u8);
                    if (isContent || reader.ValueTextEquals("reasoning_content"u8))
                    {
                        reader.Read();
                        if (reader.TokenType == JsonTokenType.String && reader.ValueSpan.Length > 0)
                        {
                            hasContent = true;
                            hasReasoning |= !isContent;
                            if (isContent && completionText is not null)
                            {
                                AppendString(ref reader, completionText);
                            }
                        }
                    }
                    else if (reader.ValueTextEquals("tool_calls"u8) || reader.ValueTextEquals("function_call"u8))
                    {
                        reader.Read();
                        var call = reader.TokenType is JsonTokenType.StartArray or JsonTokenType.StartObject;
                        hasContent |= call;
                        hasToolCall |= call;
                        reader.Skip();
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
            }
            else
            {
                reader.Skip();
            }
        }
    }

    private static TokenUsage? ReadUsage(ref Utf8JsonReader reader)
    {
        int? prompt = null, completion = null, cached = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("prompt_tokens"u8))
            {
                reader.Read();
                prompt = Count(ref reader);
            }
            else if (reader.ValueTextEquals("completion_tokens"u8))
            {
                reader.Read();
                completion = Count(ref reader);
            }
            else if (reader.ValueTextEquals("prompt_tokens_details"u8))
            {
                reader.Read();
                cached = reader.TokenType == JsonTokenType.StartObject ? ReadCached(ref reader) : SkipCount(ref reader);
            }
            else
            {
                reader.Skip();
            }
        }
        // Cached tokens are part of the prompt: a provider reporting more than its prompt is believed only up to the prompt.
        return prompt is null && completion is null ? null : new TokenUsage(prompt ?? 0, completion ?? 0, CachedPrompt: Math.Min(cached ?? 0, prompt ?? 0));
    }

    /// <summary><c>prompt_tokens_details.cached_tokens</c>: the prompt tokens the provider read from its prompt cache.</summary>
    private static int? ReadCached(ref Utf8JsonReader reader)
    {
        int? cached = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("cached_tokens"u8))
            {
                reader.Read();
                cached = Count(ref reader);
            }
            else
            {
                reader.Skip();
            }
        }
        return cached;
    }

    private static int? SkipCount(ref Utf8JsonReader reader)
    {
        reader.Skip();
        return null;
    }

    /// <summary>
    /// A token count as providers write it: <c>12</c>, or <c>12.0</c> from servers that write every number as a float.
    /// Anything else (a fraction, a negative, out of range, not a number) is no count at all, never an exception.
    /// </summary>
    private static int? Count(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.Number)
        {
            if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
            {
                reader.Skip();
            }
            return null;
        }
        if (reader.TryGetInt32(out var count))
        {
            return count >= 0 ? count : null;
        }
        return reader.TryGetDouble(out var number) && number is >= 0 and <= int.MaxValue && number == Math.Floor(number) ? (int)number : null;
    }

    private static void AppendString(ref Utf8JsonReader reader, StringBuilder target)
    {
        var length = reader.HasValueSequence ? checked((int)reader.ValueSequence.Length) : reader.ValueSpan.Length;
        var buffer = ArrayPool<char>.Shared.Rent(length);
        try
        {
            var written = reader.CopyString(buffer);
            target.Append(buffer, 0, written);
        }
        finally
        {
            ArrayPool<char>.Shared.Return(buffer);
        }
    }
}
