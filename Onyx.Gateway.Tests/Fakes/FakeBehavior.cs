namespace Onyx.Gateway.Tests.Fakes;

/// <summary>
/// How a fake provider answers. Immutable: change it with <c>with</c>, or through the setters on
/// <see cref="FakeLlmProvider"/>, which swap the whole record atomically.
/// </summary>
public sealed record FakeBehavior
{
    /// <summary>The tokens a fake streams when nothing else is configured.</summary>
    public static IReadOnlyList<string> DefaultTokens { get; } = ["Hello", " from", " the", " fake"];

    /// <summary>The content tokens, one per stream event / line; the non-streaming answer is their concatenation.</summary>
    public IReadOnlyList<string> Tokens { get; init; } = DefaultTokens;

    /// <summary>The prompt token count reported in usage (OpenAI <c>prompt_tokens</c>, Ollama <c>prompt_eval_count</c>).</summary>
    public int PromptTokens { get; init; } = 12;

    /// <summary>
    /// Of <see cref="PromptTokens"/>, how many the provider read from its prompt cache, reported as OpenAI does in
    /// <c>usage.prompt_tokens_details.cached_tokens</c> (OpenAI fake; 0: no details sent).
    /// </summary>
    public int CachedPromptTokens { get; init; }

    /// <summary>The model the answer names; <see langword="null"/> echoes the model the request asked for.</summary>
    public string? ResponseModel { get; init; }

    /// <summary>Pause before every content token after the first (non-streaming: the sum, before answering).</summary>
    public TimeSpan TokenDelay { get; init; } = TimeSpan.Zero;

    /// <summary>The fault applied to chat calls once the <see cref="FakeLlmProvider.FailNext"/> queue is empty.</summary>
    public FakeFault Fault { get; init; } = FakeFault.None;

    /// <summary>When set, a chat call without <c>Authorization: Bearer {RequiredApiKey}</c> gets a protocol-shaped 401.</summary>
    public string? RequiredApiKey { get; init; }

    /// <summary>When set, a stream answers with a call of this tool, its arguments streamed in <see cref="Tokens"/>.</summary>
    public string? ToolCall { get; init; }

    /// <summary>When set, the model calls this tool and then answers with its result (OpenAI fake; see <see cref="FakeToolConversation"/>).</summary>
    public FakeToolConversation? ToolConversation { get; init; }

    /// <summary>What the model does with a conversation that ends in an assistant message (a prefill).</summary>
    public FakeContinuation Continuation { get; init; } = FakeContinuation.Restarts;

    /// <summary>Reasoning deltas (<c>reasoning_content</c>, as DeepSeek-R1 streams them) sent before the answer's tokens (OpenAI fake).</summary>
    public IReadOnlyList<string> Reasoning { get; init; } = [];

    /// <summary>Usage numbers are written as JSON floats (<c>12.0</c>), as some OpenAI-compatible servers do.</summary>
    public bool FractionalUsage { get; init; }

    /// <summary>The models the discovery endpoints list (OpenAI <c>/v1/models</c>, Ollama <c>/api/tags</c> and <c>/api/show</c>).</summary>
    public IReadOnlyList<string> Models { get; init; } = ["fake-model"];

    /// <summary>The full answer text: the tokens concatenated.</summary>
    public string Text => string.Concat(Tokens);
}

/// <summary>How a fake model treats a trailing assistant message: the ways real models and servers differ.</summary>
public enum FakeContinuation
{
    /// <summary>Ignores it and answers from the beginning (as many chat templates make a model do).</summary>
    Restarts,

    /// <summary>
    /// Continues it: when it is a prefix of the fake's answer, streams the rest of that answer from exactly there;
    /// otherwise (someone else's words) goes on with its own answer, as a model does with a prefix it would not have written.
    /// </summary>
    Honours,

    /// <summary>Refuses it with a 400 ("the last message must be from the user").</summary>
    RefusesPrefill,
}
