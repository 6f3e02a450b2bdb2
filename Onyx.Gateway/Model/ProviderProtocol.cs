
namespace Onyx.Gateway.Model;

/// <summary>The wire protocol a provider speaks.</summary>
internal enum ProviderProtocol
{
    /// <summary>OpenAI's <c>/chat/completions</c> with SSE streaming.</summary>
    OpenAiCompatible,

    /// <summary>Ollama's native <c>/api/chat</c> with NDJSON streaming.</summary>
    OllamaNative,
}
