using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Providers;

namespace Onyx.Gateway.Routing;

/// <summary>
/// The retry and fallback policy, one row per failure class (README, "Retry and fallback policy"; docs/resilience.md):
/// <list type="table">
/// <listheader><term>class</term><description>same deployment · next deployment · breaker</description></listheader>
/// <item><term>rate-limited</term><description>Retry-After ≤ <c>MaxRetryAfterWait</c> (3 s) that fits the request's
/// budget: waited out, then retried (<c>RateLimitErrorRetries</c>, 1) · otherwise at once · rests for Retry-After,
/// else a failure</description></item>
/// <item><term>server error, transport</term><description>retried (<c>InternalServerErrorRetries</c> /
/// <c>num_retries</c>, 1) within the retry deadline · then · a failure</description></item>
/// <item><term>silent</term><description>never · at once · a failure</description></item>
/// <item><term>slow first token</term><description>only with <c>TimeoutErrorRetries</c> · at once · no verdict</description></item>
/// <item><term>context window</term><description>never · <c>context_window_fallbacks</c>, else the rest of the chain · no verdict</description></item>
/// <item><term>content policy</term><description><c>ContentPolicyViolationErrorRetries</c> (0) · only with
/// <c>content_policy_fallbacks</c>; else the client gets the refusal · no verdict</description></item>
/// <item><term>bad request</term><description><c>BadRequestErrorRetries</c> (0) · never: the client gets the provider's 400 · no verdict</description></item>
/// <item><term>auth</term><description>never · at once · opens the breaker</description></item>
/// </list>
/// Whatever the row, one deployment gets at most two attempts within <see cref="AttemptWindow"/>.
/// </summary>
internal sealed class FailurePolicy
{
    /// <summary>One deployment gets at most <see cref="MaxAttemptsInWindow"/> attempts within this long.</summary>
    public static readonly TimeSpan AttemptWindow = TimeSpan.FromSeconds(1.5);

    public const int MaxAttemptsInWindow = 2;

    /// <summary>
    /// How long after a Retry-After rest the retry goes: the breaker rests the deployment exactly that long, and a
    /// timer may fire a few milliseconds early against the breaker's clock — the retry must find the rest over.
    /// </summary>
    private static readonly TimeSpan AfterRest = TimeSpan.FromMilliseconds(50);

    /// <summary>LiteLLM's default request timeout is far longer; ten minutes bounds a request's whole budget.</summary>
    public static readonly TimeSpan DefaultBudget = TimeSpan.FromMinutes(10);

    private readonly RoutingOptions _options;
    private readonly TimeProvider _time;
    private readonly int _transportRetries;
    private readonly int _serverErrorRetries;
    private readonly int _rateLimitRetries;
    private readonly int _timeoutRetries;
    private readonly int _contentPolicyRetries;
    private readonly int _badRequestRetries;

    public FailurePolicy(IOptions<OnyxOptions> onyx, IOptions<LiteLlmOptions> liteLlm, TimeProvider time)
    {
        _options = onyx.Value.Routing;
        _time = time;
        var router = liteLlm.Value.RouterSettings;
        var policy = router.RetryPolicy;
        _transportRetries = router.NumRetries ?? 1;
        _serverErrorRetries = policy.InternalServerErrorRetries ?? _transportRetries;
        _rateLimitRetries = policy.RateLimitErrorRetries ?? _transportRetries;
        _timeoutRetries = policy.TimeoutErrorRetries ?? 0;
        _contentPolicyRetries = policy.ContentPolicyViolationErrorRetries ?? 0;
        _badRequestRetries = policy.BadRequestErrorRetries ?? 0;
        Budget = router.Timeout is { } seconds ? TimeSpan.FromSeconds(seconds) : DefaultBudget;
    }

    /// <summary>
    /// The most a request may take in all (<c>router_settings.timeout</c>): a non-streamed attempt's limit, and what a
    /// Retry-After wait must fit in.
    /// </summary>
    public TimeSpan Budget { get; }

    public static FailureClass Classify(UpstreamException failure, bool headersReceived) => failure.Kind switch
    {
        FailureKind.Timeout => headersReceived ? FailureClass.Slow : FailureClass.Silent,
        FailureKind.ContextWindow => FailureClass.ContextWindow,
        FailureKind.ContentPolicy => FailureClass.ContentPolicy,
        FailureKind.ClientError => FailureClass.BadRequest,
        FailureKind.Auth => FailureClass.Auth,
        FailureKind.Status => failure.StatusCode switch
        {
            429 => FailureClass.RateLimited,
            503 when failure.RetryAfter is not null => FailureClass.RateLimited,
            408 or >= 500 => FailureClass.ServerError,
            _ => FailureClass.Unavailable,
        },
        _ => FailureClass.Transport,
    };

    /// <summary>What the breaker hears of a failure, whatever happens to the request next.</summary>
    public static BreakerVerdict VerdictOf(FailureClass failure, UpstreamException exception) => failure switch
    {
        FailureClass.RateLimited => exception.RetryAfter is null ? BreakerVerdict.Failure : BreakerVerdict.CoolDown,
        FailureClass.ServerError or FailureClass.Transport or FailureClass.Silent or FailureClass.Unavailable => BreakerVerdict.Failure,
        FailureClass.Auth => BreakerVerdict.Trip,
        _ => BreakerVerdict.None,
    };

    /// <param name="failure">The attempt's failure.</param>
    /// <param name="headersReceived">Whether the deployment answered with headers at all.</param>
    /// <param name="history">This request's attempts on this deployment so far (the failed one included).</param>
    /// <param name="requestStarted">When the request arrived (a timestamp of the policy's clock).</param>
    /// <param name="contentPolicyFallbacks">Whether the alias has <c>content_policy_fallbacks</c>.</param>
    public Decision Decide(UpstreamException failure, bool headersReceived, AttemptHistory history, long requestStarted, bool contentPolicyFallbacks)
    {
        // One reading of the clock for every check: read twice, a thread paused in between would see the deadline and
        // the attempt window at different moments and let a third attempt through.
        var now = _time.GetTimestamp();
        var elapsed = _time.GetElapsedTime(requestStarted, now);
        var failureClass = Classify(failure, headersReceived);
        var verdict = VerdictOf(failureClass, failure);
        return failureClass switch
        {
            FailureClass.RateLimited when failure.RetryAfter is { } wait && wait <= _options.MaxRetryAfterWait
                && history.Retries < _rateLimitRetries && elapsed + wait < Budget && history.Allows(now, wait, _time)
                => new Decision(failureClass, NextStep.RetrySame, verdict, wait + AfterRest),
            FailureClass.ServerError => Retry(failureClass, verdict, _serverErrorRetries, history, now, elapsed),
            FailureClass.Transport => Retry(failureClass, verdict, _transportRetries, history, now, elapsed),
            FailureClass.Slow => Retry(failureClass, verdict, _timeoutRetries, history, now, elapsed),
            FailureClass.ContextWindow => new Decision(failureClass, NextStep.ContextWindowFallbacks, verdict),
            FailureClass.ContentPolicy => Retry(failureClass, verdict, _contentPolicyRetries, history, now, elapsed,
                otherwise: contentPolicyFallbacks ? NextStep.ContentPolicyFallbacks : NextStep.Stop),
            FailureClass.BadRequest => Retry(failureClass, verdict, _badRequestRetries, history, now, elapsed, otherwise: NextStep.Stop),
            _ => new Decision(failureClass, NextStep.NextDeployment, verdict),
        };
    }

    /// <summary>
    /// A retry of the same deployment when the class allows one more, it can start within the retry deadline, and the
    /// deployment's attempt window has room; the first retry goes at once, later ones after a jittered backoff.
    /// </summary>
    private Decision Retry(FailureClass failureClass, BreakerVerdict verdict, int allowed, AttemptHistory history, long now,
        TimeSpan elapsed, NextStep otherwise = NextStep.NextDeployment)
    {
        if (history.Retries >= allowed)
        {
            return new Decision(failureClass, otherwise, verdict);
        }
        // Full jitter from the second retry on, so replicas retrying together spread out; the window may ask for longer.
        var delay = history.Retries == 0 ? TimeSpan.Zero : TimeSpan.FromMilliseconds(100 * Math.Pow(2, history.Retries) * Random.Shared.NextDouble());
        delay = Max(delay, history.WaitForRoom(now, _time));
        return elapsed + delay < _options.RetryDeadline && history.Allows(now, delay, _time)
            ? new Decision(failureClass, NextStep.RetrySame, verdict, delay)
            : new Decision(failureClass, otherwise, verdict);
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;
}
