using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Tokenizers;

namespace Onyx.Gateway.Telemetry;

/// <summary>
/// Counts tokens with the cl100k_base tokenizer when a provider reports no usage. The count is an estimate
/// (each model has its own tokenizer) and is marked as such in the call log.
/// </summary>
internal sealed class TokenEstimator
{
    /// <summary>OpenAI's per-message framing overhead in chat formats.</summary>
    private const int TokensPerMessage = 4;

    private readonly Lazy<Tokenizer> _tokenizer = new(() => TiktokenTokenizer.CreateForEncoding("cl100k_base"));

    public int CountPrompt(JsonArray messages)
    {
        var total = 3;
        foreach (var message in messages.OfType<JsonObject>())
        {
            total += TokensPerMessage;
            switch (message["content"])
            {
                case JsonValue text when text.GetValueKind() == JsonValueKind.String:
                    total += Count(text.GetValue<string>());
                    break;
                case JsonArray parts:
                    foreach (var part in parts.OfType<JsonObject>())
                    {
                        if (part["text"] is JsonValue partText && partText.GetValueKind() == JsonValueKind.String)
                        {
                            total += Count(partText.GetValue<string>());
                        }
                    }
                    break;
            }
        }
        return total;
    }

    public int Count(string? text) => string.IsNullOrEmpty(text) ? 0 : _tokenizer.Value.CountTokens(text);
}
