using System.Runtime.InteropServices;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Routing;

/// <summary>How long an attempt may take to produce its first token, and to go quiet once streaming.</summary>
internal sealed class AttemptLimits(IOptions<OnyxOptions> options)
{
    private readonly RoutingOptions _options = options.Value.Routing;

    /// <summary>
    /// The first-token limit for <paramref name="request"/>: the base, plus an allowance per 1 000 prompt tokens. The
    /// prompt's size is estimated from its bytes (about 4 per token) rather than tokenized: the limit needs the scale of
    /// the prompt, not its exact count, and this costs nothing per request.
    /// </summary>
    public TimeSpan FirstToken(ChatRequest request)
    {
        var promptTokens = JsonMarshal.GetRawUtf8Value(request.Messages).Length / 4.0;
        return _options.FirstTokenTimeout + _options.FirstTokenTimeoutPer1000PromptTokens * (promptTokens / 1000);
    }

    public TimeSpan Idle => _options.StreamIdleTimeout;
}
