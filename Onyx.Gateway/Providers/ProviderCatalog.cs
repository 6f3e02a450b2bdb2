namespace Onyx.Gateway.Providers;

/// <summary>The wire protocol a provider speaks.</summary>
internal enum ProviderProtocol
{
    /// <summary>OpenAI's <c>/chat/completions</c> with SSE streaming.</summary>
    OpenAiCompatible,

    /// <summary>Ollama's native <c>/api/chat</c> with NDJSON streaming.</summary>
    OllamaNative,
}

/// <summary>What a LiteLLM provider prefix (<c>together_ai/</c>, <c>ollama/</c>, …) means.</summary>
internal sealed record ProviderInfo(string Prefix, ProviderProtocol Protocol, string DefaultApiBase, bool RequiresApiKey);

internal static class ProviderCatalog
{
    public static readonly IReadOnlyDictionary<string, ProviderInfo> ByPrefix =
        new Dictionary<string, ProviderInfo>(StringComparer.OrdinalIgnoreCase)
        {
            ["together_ai"] = new("together_ai", ProviderProtocol.OpenAiCompatible, "https://api.together.xyz/v1", RequiresApiKey: true),
            ["deepseek"] = new("deepseek", ProviderProtocol.OpenAiCompatible, "https://api.deepseek.com/v1", RequiresApiKey: true),
            // Any OpenAI-compatible server (vLLM, LM Studio, llama.cpp server): a key only where it wants one.
            ["openai"] = new("openai", ProviderProtocol.OpenAiCompatible, "https://api.openai.com/v1", RequiresApiKey: false),
            ["ollama"] = new("ollama", ProviderProtocol.OllamaNative, "http://localhost:11434", RequiresApiKey: false),
            ["ollama_chat"] = new("ollama_chat", ProviderProtocol.OllamaNative, "http://localhost:11434", RequiresApiKey: false),
        };

    public static string SupportedPrefixes => string.Join(", ", ByPrefix.Keys.Select(p => p + "/"));
}
