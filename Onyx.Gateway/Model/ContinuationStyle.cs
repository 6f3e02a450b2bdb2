
namespace Onyx.Gateway.Model;

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
