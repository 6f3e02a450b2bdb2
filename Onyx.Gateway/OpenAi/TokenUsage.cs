namespace Onyx.Gateway.OpenAi;

/// <summary>
/// Tokens of one call; <see cref="Estimated"/> when counted by the gateway rather than the provider.
/// <see cref="CachedPrompt"/> of the prompt tokens were read from the provider's prompt cache
/// (<c>usage.prompt_tokens_details.cached_tokens</c>), which providers charge less for.
/// </summary>
internal readonly record struct TokenUsage(int Prompt, int Completion, bool Estimated = false, int CachedPrompt = 0)
{
    public int Total => Prompt + Completion;

    public static TokenUsage operator +(TokenUsage a, TokenUsage b) =>
        new(a.Prompt + b.Prompt, a.Completion + b.Completion, a.Estimated || b.Estimated, a.CachedPrompt + b.CachedPrompt);

    public static TokenUsage operator -(TokenUsage a, TokenUsage b) =>
        new(Math.Max(0, a.Prompt - b.Prompt), Math.Max(0, a.Completion - b.Completion), a.Estimated, Math.Max(0, a.CachedPrompt - b.CachedPrompt));
}
