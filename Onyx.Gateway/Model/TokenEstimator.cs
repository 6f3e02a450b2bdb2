using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace Onyx.Gateway.Model;

/// <summary>
/// Counts tokens with the cl100k_base tokenizer when a provider reports no usage. The count is an estimate
/// (each model has its own tokenizer) and is marked as such in the call log.
/// </summary>
internal sealed class TokenEstimator
{
    /// <summary>OpenAI's per-message framing overhead in chat formats.</summary>
    private const int TokensPerMessage = 4;

    private readonly Lazy<Tokenizer> _tokenizer = new(() => TiktokenTokenizer.CreateForEncoding("cl100k_base"));

    public int CountPrompt(JsonElement messages)
    {
        var total = 3;
        foreach (var message in messages.EnumerateArray())
        {
            total += TokensPerMessage;
            if (message.ValueKind != JsonValueKind.Object || !message.TryGetProperty("content"u8, out var content))
            {
                continue;
            }
            switch (content.ValueKind)
            {
                case JsonValueKind.String:
                    total += Count(content.GetString());
                    break;
                case JsonValueKind.Array:
                    foreach (var part in content.EnumerateArray())
                    {
                        if (part.ValueKind == JsonValueKind.Object && part.TryGetProperty("text"u8, out var text) && text.ValueKind == JsonValueKind.String)
                        {
                            total += Count(text.GetString());
                        }
                    }
                    break;
            }
        }
        return total;
    }

    public int Count(string? text) => string.IsNullOrEmpty(text) ? 0 : _tokenizer.Value.CountTokens(text);
}
