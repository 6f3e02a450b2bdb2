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

    /// <summary>A model server that refuses a conversation ending in an assistant message (no prefill): a 400.</summary>
    public bool RejectsPrefill { get; init; }

    /// <summary>The models the discovery endpoints list (OpenAI <c>/v1/models</c>, Ollama <c>/api/tags</c> and <c>/api/show</c>).</summary>
    public IReadOnlyList<string> Models { get; init; } = ["fake-model"];

    /// <summary>The full answer text: the tokens concatenated.</summary>
    public string Text => string.Concat(Tokens);
}
