using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Model;

/// <summary>What a LiteLLM provider prefix (<c>together_ai/</c>, <c>ollama/</c>, …) means.</summary>
/// <param name="Takes">The provider-specific sampling parameters its API documents (docs/configuration.md, "Provider-specific parameters").</param>
internal sealed record ProviderInfo(string Prefix, ProviderProtocol Protocol, string DefaultApiBase, bool RequiresApiKey,
    ContinuationStyle Continuation = ContinuationStyle.Prefill, ProviderParameters Takes = ProviderParameters.None);
