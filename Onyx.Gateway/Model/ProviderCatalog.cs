using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Model;

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
