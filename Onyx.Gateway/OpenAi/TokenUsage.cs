namespace Onyx.Gateway.OpenAi;

/// <summary>Tokens of one call; <see cref="Estimated"/> when counted by the gateway rather than the provider.</summary>
internal readonly record struct TokenUsage(int Prompt, int Completion, bool Estimated = false)
{
    public int Total => Prompt + Completion;
}
