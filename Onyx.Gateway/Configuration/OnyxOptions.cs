using Microsoft.Extensions.Options;
namespace Onyx.Gateway.Configuration;

/// <summary>Onyx's own settings (section <c>Onyx</c>), beside the LiteLLM-format ones.</summary>
internal sealed class OnyxOptions
{
    public const string SectionName = "Onyx";

    [ValidateObjectMembers]
    public RoutingOptions Routing { get; set; } = new();

    /// <summary>Per provider prefix (<c>together_ai</c>, <c>ollama</c>, …): overrides of the provider's defaults.</summary>
    public Dictionary<string, ProviderOverride> Providers { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Service names the AppHost knows it could not start (comma-separated, e.g. <c>ollama</c>): deployments whose
    /// <c>api_base</c> names one of them are reported unavailable instead of being called.
    /// </summary>
    public string? UnavailableServices { get; set; }

    [ValidateObjectMembers]
    public LimitsOptions Limits { get; set; } = new();

    public CorsOptions Cors { get; set; } = new();

    public CallLogOptions CallLog { get; set; } = new();

    [ValidateObjectMembers]
    public RateLimitOptions RateLimits { get; set; } = new();

    [ValidateObjectMembers]
    public AuthOptions Auth { get; set; } = new();

    public MetricsOptions Metrics { get; set; } = new();

    [ValidateObjectMembers]
    public ForwardedHeadersSettings ForwardedHeaders { get; set; } = new();
}

internal sealed class MetricsOptions
{
    /// <summary>Serve <c>GET /metrics</c> in Prometheus text format (OTLP export under Aspire is separate and always on).</summary>
    public bool Prometheus { get; set; } = true;

    /// <summary>
    /// Who may read <c>/metrics</c>: <c>loopback</c> (default: callers on this machine, or anyone with the master key),
    /// <c>open</c> (anyone who can reach the gateway), <c>master-key</c> (the master key only).
    /// </summary>
    public string Access { get; set; } = MetricsAccess.Loopback;

    /// <summary>The older switch for <c>Access: master-key</c>, still honoured.</summary>
    public bool RequireMasterKey { get; set; }

    public string EffectiveAccess => RequireMasterKey ? MetricsAccess.MasterKey : Access;
}

internal static class MetricsAccess
{
    public const string Loopback = "loopback";
    public const string Open = "open";
    public const string MasterKey = "master-key";
}

/// <summary>
/// The proxies in front of the gateway whose <c>X-Forwarded-For</c>/<c>X-Forwarded-Proto</c> are believed, so the
/// audit trail and the <c>/metrics</c> loopback rule see the real client. None by default: the headers are ignored.
/// </summary>
[OptionsSection("Onyx:ForwardedHeaders")]
internal sealed class ForwardedHeadersSettings
{
    /// <summary>Proxy addresses (<c>10.0.0.5</c>).</summary>
    public List<string> KnownProxies { get; set; } = [];

    /// <summary>Proxy networks (<c>10.0.0.0/8</c>).</summary>
    public List<string> KnownNetworks { get; set; } = [];

    /// <summary>How many proxies in a row may add themselves to <c>X-Forwarded-For</c>.</summary>
    [Between(1)]
    public int ForwardLimit { get; set; } = 1;
}

[OptionsSection("Onyx:RateLimits")]
internal sealed class RateLimitOptions
{
    /// <summary>Turns the per-user limits off entirely (e.g. a gateway behind another rate limiter).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>The rolling window the per-minute limits count in (shorter in tests).</summary>
    [Positive]
    public TimeSpan Window { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>The longest a request waits on Redis for its rate-limit decision before the local fallback decides.</summary>
    [Positive]
    public TimeSpan RedisTimeout { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// Redis answers slower than <see cref="RedisTimeout"/> this many times in a row before the replica tells the Redis
    /// connection's watch that Redis is down (a lost connection is down at once). Each slow answer's request is decided
    /// in memory meanwhile.
    /// </summary>
    [Between(1)]
    public int SlowAnswersToFallBack { get; set; } = 3;

    /// <summary>While Redis is unreachable: <c>false</c> limits per replica in memory, <c>true</c> refuses with 503.</summary>
    public bool FailClosed { get; set; }

    /// <summary>
    /// How long Redis keeps a call's parallel-request slot and budget reservation without hearing from its replica: the
    /// replica renews them every third of this while the call runs, so a replica that died frees them after this long.
    /// </summary>
    [DurationBetween("00:00:03", Bounds.Forever, Why = "a call's lease is renewed every third of it, and a renewal may take a second")]
    public TimeSpan ParallelLease { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>Limits per end user (OpenAI's <c>user</c> field) within one caller; none by default.</summary>
    [ValidateObjectMembers]
    public EndUserLimits EndUser { get; set; } = new();
}

[OptionsSection("Onyx:RateLimits:EndUser")]
internal sealed class EndUserLimits
{
    [NotNegative]
    public int? Rpm { get; set; }

    [NotNegative]
    public int? Tpm { get; set; }
}

[OptionsSection("Onyx:Auth")]
internal sealed class AuthOptions
{
    /// <summary>How long a replica trusts a key it looked up in Redis (deletions reach other replicas sooner, by pub/sub).</summary>
    [NotNegative]
    public TimeSpan KeyCacheTtl { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The longest a request waits on Redis to look a key up.</summary>
    [Positive]
    public TimeSpan RedisTimeout { get; set; } = TimeSpan.FromMilliseconds(250);
}

[OptionsSection("Onyx:Routing")]
internal sealed class RoutingOptions
{
    /// <summary>
    /// A streaming attempt that has produced no token by then (plus <see cref="FirstTokenTimeoutPer1000PromptTokens"/>)
    /// is abandoned for the next deployment.
    /// </summary>
    [Positive]
    public TimeSpan FirstTokenTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Added to <see cref="FirstTokenTimeout"/> per 1 000 prompt tokens (estimated from the prompt's size): a model
    /// reads a long prompt before it writes its first token, and a healthy one must not be abandoned for it.
    /// </summary>
    [NotNegative]
    public TimeSpan FirstTokenTimeoutPer1000PromptTokens { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// A 429 or 503 whose Retry-After is at most this long is waited out and the same deployment tried again; a longer
    /// one sends the request to the next deployment at once.
    /// </summary>
    [NotNegative]
    public TimeSpan MaxRetryAfterWait { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>A stream that sends nothing for this long after its first token has stalled: a failure, like a cut.</summary>
    [Positive]
    public TimeSpan StreamIdleTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The window in which <c>allowed_fails</c> failures open a breaker.</summary>
    [Positive]
    public TimeSpan FailureWindow { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Retries of one deployment (other than a Retry-After waited out) start only within this long of the request's
    /// start; later, the gateway fails over instead, so retries never delay failover past it. It is also the window in
    /// which one deployment gets at most two attempts.
    /// </summary>
    [NotNegative]
    public TimeSpan RetryDeadline { get; set; } = TimeSpan.FromSeconds(1.5);

    /// <summary>
    /// Calls that may wait for a slot on a deployment with <c>max_parallel_requests</c> (each for at most the
    /// first-token limit); beyond it the deployment counts as overloaded and the next one is tried.
    /// </summary>
    [NotNegative]
    public int QueueLimit { get; set; } = 100;

    /// <summary>Time allowed to open a TCP/TLS connection to an upstream.</summary>
    [Positive]
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// With Redis: the longest a request waits for Redis to say whether this replica may send the cluster's one
    /// half-open probe. After it the replica decides alone (it probes), as it would without Redis.
    /// </summary>
    [Positive]
    public TimeSpan BreakerRedisTimeout { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// With Redis: how long a replica's claim on the half-open probe holds. The probe's verdict normally ends it
    /// sooner; the lease only matters when the replica dies mid-probe, and then another one probes after it.
    /// </summary>
    [Positive]
    public TimeSpan ProbeLease { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// With Redis: the longest a call waits for Redis to count it against a deployment's <c>rpm</c>/<c>tpm</c>. Past it
    /// (or while Redis is unreachable) the replica counts in memory, and routing goes on.
    /// </summary>
    [Positive]
    public TimeSpan DeploymentLimitRedisTimeout { get; set; } = TimeSpan.FromMilliseconds(50);
}

internal sealed class ProviderOverride
{
    /// <summary>Replaces the provider's default base URL (deployments with an explicit api_base keep theirs).</summary>
    public string? ApiBase { get; set; }
}

[OptionsSection("Onyx:Limits")]
internal sealed class LimitsOptions
{
    /// <summary>The largest request body (413 beyond it), enforced by Kestrel while the body is read, chunked or not.</summary>
    [Between(1024)]
    public long MaxRequestBodyBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>The most messages one chat request may carry (400 beyond it).</summary>
    [Between(1)]
    public int MaxMessages { get; set; } = OpenAi.ChatRequest.DefaultMaxMessages;
}

/// <summary>Cross-origin access for browser clients: off unless origins are listed.</summary>
internal sealed class CorsOptions
{
    /// <summary>Origins (<c>https://app.example.com</c>) whose pages may call the gateway; empty: no CORS headers at all.</summary>
    public List<string> AllowedOrigins { get; set; } = [];
}

internal sealed class CallLogOptions
{
    /// <summary>Write one JSON line per LLM call to stdout (the OpenTelemetry log record is always written).</summary>
    public bool Stdout { get; set; } = true;
}

/// <summary>
/// The checks a single <c>Onyx:*</c> value must pass, written on the options as attributes; the validator is generated
/// at compile time. Rules across values, and formats no attribute says (addresses, origins), are in
/// <see cref="OnyxOptionsValidator"/>.
/// </summary>
[OptionsValidator]
internal sealed partial class OnyxOptionsAnnotations : IValidateOptions<OnyxOptions>;

/// <summary>Bounds of durations in rule attributes.</summary>
internal static class Bounds
{
    public const string Forever = "10675199.02:48:05.4775807";
}
