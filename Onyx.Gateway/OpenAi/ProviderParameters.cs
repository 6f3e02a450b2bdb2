using System.Collections.Frozen;

namespace Onyx.Gateway.OpenAi;

/// <summary>
/// Sampling parameters outside OpenAI's API that open-model servers take and LiteLLM passes through as the client sent
/// them. Which provider takes which is <c>Providers/ProviderCatalog</c>'s to say; a deployment whose provider does not
/// take one the client sent is skipped (or, with <c>drop_params</c>, called without it), never silently served as if
/// it had been applied.
/// </summary>
[Flags]
internal enum ProviderParameters
{
    None = 0,

    /// <summary><c>top_k</c>: sample from the k most likely tokens (Together, vLLM, Ollama).</summary>
    TopK = 1,

    /// <summary><c>min_p</c>: drop tokens less likely than this share of the most likely one (Together, vLLM, Ollama).</summary>
    MinP = 2,

    /// <summary><c>repetition_penalty</c>: Together's and vLLM's name; Ollama's <c>repeat_penalty</c>.</summary>
    RepetitionPenalty = 4,

    /// <summary><c>repeat_penalty</c>: Ollama's name for the repetition penalty.</summary>
    RepeatPenalty = 8,

    /// <summary><c>typical_p</c>: locally typical sampling (Ollama).</summary>
    TypicalP = 16,

    /// <summary><c>top_a</c>: OpenRouter's; none of Onyx's providers takes it.</summary>
    TopA = 32,
}

internal static class ProviderParameterNames
{
    public static readonly FrozenDictionary<string, ProviderParameters> ByName = new Dictionary<string, ProviderParameters>(StringComparer.Ordinal)
    {
        ["top_k"] = ProviderParameters.TopK,
        ["min_p"] = ProviderParameters.MinP,
        ["repetition_penalty"] = ProviderParameters.RepetitionPenalty,
        ["repeat_penalty"] = ProviderParameters.RepeatPenalty,
        ["typical_p"] = ProviderParameters.TypicalP,
        ["top_a"] = ProviderParameters.TopA,
    }.ToFrozenDictionary(StringComparer.Ordinal);

    /// <summary>The parameters' names, comma-separated, in a fixed order.</summary>
    public static string Describe(ProviderParameters parameters) =>
        string.Join(", ", ByName.Where(p => (parameters & p.Value) != 0).OrderBy(p => p.Value).Select(p => p.Key));
}
