namespace Onyx.Gateway.Providers;

/// <summary>
/// Recognises the two refusals that decide where a request may go next, from the error code or the wording each
/// provider uses: the prompt is too long for this model (another model may take it), or the provider's content
/// policy refused it (another provider would often refuse it too). Providers word these freely, so the check is by
/// the phrases they are known to use (the same ones LiteLLM maps to its exception types).
/// </summary>
internal static class UpstreamErrorText
{
    private static readonly string[] ContextWindowCodes = ["context_length_exceeded", "context_window_exceeded", "string_above_max_length"];

    private static readonly string[] ContextWindowPhrases =
    [
        "maximum context length", "context length", "context window", "context_length", "too many tokens",
        "prompt is too long", "input is too long", "is longer than the model", "exceeds the model's",
        "reduce the length of the messages", "maximum number of tokens", "input tokens exceed", "`max_new_tokens` must be <=",
        "longer than the maximum", "exceeds the context",
    ];

    private static readonly string[] ContentPolicyCodes = ["content_filter", "content_policy_violation", "content_policy", "moderation_blocked"];

    private static readonly string[] ContentPolicyPhrases =
    [
        "content management policy", "content policy", "content_filter", "safety system", "violates our usage policies",
        "flagged by", "blocked by the safety",
    ];

    public static bool IsContextWindow(string? code, string? message) => Matches(code, message, ContextWindowCodes, ContextWindowPhrases);

    public static bool IsContentPolicy(string? code, string? message) => Matches(code, message, ContentPolicyCodes, ContentPolicyPhrases);

    private static bool Matches(string? code, string? message, string[] codes, string[] phrases) =>
        (code is not null && codes.Contains(code, StringComparer.OrdinalIgnoreCase))
        || (message is not null && phrases.Any(p => message.Contains(p, StringComparison.OrdinalIgnoreCase)));
}
