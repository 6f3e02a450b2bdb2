namespace Onyx.Gateway.Providers;

/// <summary>The wire protocol a provider speaks.</summary>
internal enum ProviderProtocol
{
    /// <summary>OpenAI's <c>/chat/completions</c> with SSE streaming.</summary>
    OpenAiCompatible,

    /// <summary>Ollama's native <c>/api/chat</c> with NDJSON streaming.</summary>
    OllamaNative,
}

/// <summary>How a provider is asked to continue a partial answer (mid-stream resume).</summary>
internal enum ContinuationStyle
{
    /// <summary>A trailing assistant message holding the partial answer, which the model continues (Ollama).</summary>
    TrailingAssistant,

    /// <summary>DeepSeek's prefix completion: a trailing assistant message marked <c>"prefix": true</c>.</summary>
    PrefixFlag,

    /// <summary>The partial answer as an assistant message, then an instruction to continue it without repeating.</summary>
    Instruction,
}

/// <summary>What a LiteLLM provider prefix (<c>together_ai/</c>, <c>ollama/</c>, …) means.</summary>
internal sealed record ProviderInfo(string Prefix, ProviderProtocol Protocol, string DefaultApiBase, bool RequiresApiKey,
    ContinuationStyle Continuation = ContinuationStyle.Instruction);

internal static class ProviderCatalog
{
    public static readonly IReadOnlyDictionary<string, ProviderInfo> ByPrefix =
        new Dictionary<string, ProviderInfo>(StringComparer.OrdinalIgnoreCase)
        {
            ["together_ai"] = new("together_ai", ProviderProtocol.OpenAiCompatible, "https://api.together.xyz/v1", RequiresApiKey: true),
            ["deepseek"] = new("deepseek", ProviderProtocol.OpenAiCompatible, "https://api.deepseek.com/v1", RequiresApiKey: true, ContinuationStyle.PrefixFlag),
            // Any OpenAI-compatible server (vLLM, LM Studio, llama.cpp server): a key only where it wants one.
            ["openai"] = new("openai", ProviderProtocol.OpenAiCompatible, "https://api.openai.com/v1", RequiresApiKey: false),
            ["ollama"] = new("ollama", ProviderProtocol.OllamaNative, "http://localhost:11434", RequiresApiKey: false, ContinuationStyle.TrailingAssistant),
            ["ollama_chat"] = new("ollama_chat", ProviderProtocol.OllamaNative, "http://localhost:11434", RequiresApiKey: false, ContinuationStyle.TrailingAssistant),
        };

    public static string SupportedPrefixes => string.Join(", ", ByPrefix.Keys.Select(p => p + "/"));
}
