using Onyx.Gateway.OpenAi;

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
/// <param name="Takes">The provider-specific sampling parameters its API documents (README, "Provider-specific parameters").</param>
internal sealed record ProviderInfo(string Prefix, ProviderProtocol Protocol, string DefaultApiBase, bool RequiresApiKey,
    ContinuationStyle Continuation = ContinuationStyle.Prefill, ProviderParameters Takes = ProviderParameters.None);

internal static class ProviderCatalog
{
    /// <summary>What Together's chat API and vLLM's OpenAI-compatible server document beyond OpenAI's fields.</summary>
    private const ProviderParameters OpenModelServers = ProviderParameters.TopK | ProviderParameters.MinP | ProviderParameters.RepetitionPenalty;

    /// <summary>
    /// Ollama's own options (<c>repetition_penalty</c> is sent as its <c>repeat_penalty</c>); Ollama does not know <c>top_a</c>.
    /// </summary>
    private const ProviderParameters OllamaOptions = OpenModelServers | ProviderParameters.RepeatPenalty | ProviderParameters.TypicalP;

    public static readonly IReadOnlyDictionary<string, ProviderInfo> ByPrefix =
        new Dictionary<string, ProviderInfo>(StringComparer.OrdinalIgnoreCase)
        {
            // Together serves open models whose chat templates continue a trailing assistant message.
            ["together_ai"] = new("together_ai", ProviderProtocol.OpenAiCompatible, "https://api.together.xyz/v1", RequiresApiKey: true,
                Takes: OpenModelServers),
            // DeepSeek's own API documents OpenAI's sampling fields only.
            ["deepseek"] = new("deepseek", ProviderProtocol.OpenAiCompatible, "https://api.deepseek.com/v1", RequiresApiKey: true, ContinuationStyle.PrefixFlag),
            // Any OpenAI-compatible server (LM Studio, llama.cpp server, OpenAI itself): a key only where it wants one.
            // OpenAI's own API answers a trailing assistant message with a new message rather than continuing it, and
            // refuses fields it does not define, so no provider-specific parameter is sent to it.
            ["openai"] = new("openai", ProviderProtocol.OpenAiCompatible, "https://api.openai.com/v1", RequiresApiKey: false, ContinuationStyle.Replay),
            // LiteLLM's prefix for a vLLM server (set api_base): OpenAI's protocol plus vLLM's sampling parameters.
            ["hosted_vllm"] = new("hosted_vllm", ProviderProtocol.OpenAiCompatible, "http://localhost:8000/v1", RequiresApiKey: false,
                ContinuationStyle.Replay, OpenModelServers),
            ["ollama"] = new("ollama", ProviderProtocol.OllamaNative, "http://localhost:11434", RequiresApiKey: false, Takes: OllamaOptions),
            ["ollama_chat"] = new("ollama_chat", ProviderProtocol.OllamaNative, "http://localhost:11434", RequiresApiKey: false, Takes: OllamaOptions),
        };

    public static string SupportedPrefixes => string.Join(", ", ByPrefix.Keys.Select(p => p + "/"));
}
