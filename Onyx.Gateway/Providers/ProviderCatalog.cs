namespace Onyx.Gateway.Providers;

/// <summary>The wire protocol a provider speaks.</summary>
internal enum ProviderProtocol
{
    /// <summary>OpenAI's <c>/chat/completions</c> with SSE streaming.</summary>
    OpenAiCompatible,

    /// <summary>Ollama's native <c>/api/chat</c> with NDJSON streaming.</summary>
    OllamaNative,
}

/// <summary>
/// How a deployment is asked to continue an answer that broke on another one (mid-stream resume). Whatever the
/// style, what comes back is checked before the client sees any of it (<c>Routing/SeamCheck</c>).
/// </summary>
internal enum ContinuationStyle
{
    /// <summary>A trailing assistant message holding the partial answer, which the model continues (Ollama, Anthropic-style).</summary>
    Prefill,

    /// <summary>DeepSeek's prefix completion: a trailing assistant message marked <c>"prefix": true</c>.</summary>
    PrefixFlag,

    /// <summary>The request again, unchanged: usable only where the new answer reproduces what the client already has.</summary>
    Replay,

    /// <summary>Never asked to continue another deployment's answer.</summary>
    None,
}

/// <summary>What a LiteLLM provider prefix (<c>together_ai/</c>, <c>ollama/</c>, …) means.</summary>
internal sealed record ProviderInfo(string Prefix, ProviderProtocol Protocol, string DefaultApiBase, bool RequiresApiKey,
    ContinuationStyle Continuation = ContinuationStyle.Prefill);

internal static class ProviderCatalog
{
    public static readonly IReadOnlyDictionary<string, ProviderInfo> ByPrefix =
        new Dictionary<string, ProviderInfo>(StringComparer.OrdinalIgnoreCase)
        {
            // Together serves open models whose chat templates continue a trailing assistant message.
            ["together_ai"] = new("together_ai", ProviderProtocol.OpenAiCompatible, "https://api.together.xyz/v1", RequiresApiKey: true),
            ["deepseek"] = new("deepseek", ProviderProtocol.OpenAiCompatible, "https://api.deepseek.com/v1", RequiresApiKey: true, ContinuationStyle.PrefixFlag),
            // Any OpenAI-compatible server (vLLM, LM Studio, llama.cpp server): a key only where it wants one.
            // OpenAI's own API answers a trailing assistant message with a new message rather than continuing it.
            ["openai"] = new("openai", ProviderProtocol.OpenAiCompatible, "https://api.openai.com/v1", RequiresApiKey: false, ContinuationStyle.Replay),
            ["ollama"] = new("ollama", ProviderProtocol.OllamaNative, "http://localhost:11434", RequiresApiKey: false),
            ["ollama_chat"] = new("ollama_chat", ProviderProtocol.OllamaNative, "http://localhost:11434", RequiresApiKey: false),
        };

    public static string SupportedPrefixes => string.Join(", ", ByPrefix.Keys.Select(p => p + "/"));
}
