
namespace Onyx.Gateway.Configuration;

/// <summary>
/// The LiteLLM proxy config file (<c>litellm-config.yaml</c>), bound from configuration. The YAML file is one
/// configuration source among the standard ones, so every key can be overridden by environment variables
/// (e.g. <c>router_settings__allowed_fails=5</c>) or by Aspire.
/// </summary>
internal sealed class LiteLlmOptions
{
    [ConfigurationKeyName("model_list")]
    public List<ModelListEntry> ModelList { get; set; } = [];

    [ConfigurationKeyName("router_settings")]
    public RouterSettings RouterSettings { get; set; } = new();

    [ConfigurationKeyName("litellm_settings")]
    public LiteLlmSettings LiteLlmSettings { get; set; } = new();

    [ConfigurationKeyName("general_settings")]
    public GeneralSettings GeneralSettings { get; set; } = new();

    private readonly List<(string Used, string Overridden)> _overridden = [];

    /// <summary>Keys set in both sections: the <c>router_settings</c> one used, the <c>litellm_settings</c> one not.</summary>
    public IReadOnlyList<(string Used, string Overridden)> Overridden => _overridden;

    /// <summary>
    /// LiteLLM reads the retry and fallback keys from <c>router_settings</c> (the router's own arguments) or else from
    /// <c>litellm_settings</c> (process-wide defaults the router falls back on): <c>fallbacks or litellm.fallbacks</c>,
    /// <c>timeout or litellm.request_timeout</c>, and so on in its <c>Router.__init__</c>. This copies each one the
    /// router section leaves unset from <c>litellm_settings</c>, so everything downstream reads one place, and notes
    /// where it came from for messages that name the key. Called once, after binding.
    /// </summary>
    public void ApplyLiteLlmSettings()
    {
        var router = RouterSettings;
        var lite = LiteLlmSettings;
        Take("fallbacks", router.Fallbacks.Count > 0, lite.Fallbacks.Count > 0, () => router.Fallbacks = lite.Fallbacks);
        Take("default_fallbacks", router.DefaultFallbacks.Count > 0, lite.DefaultFallbacks.Count > 0, () => router.DefaultFallbacks = lite.DefaultFallbacks);
        Take("context_window_fallbacks", router.ContextWindowFallbacks.Count > 0, lite.ContextWindowFallbacks.Count > 0,
            () => router.ContextWindowFallbacks = lite.ContextWindowFallbacks);
        Take("content_policy_fallbacks", router.ContentPolicyFallbacks.Count > 0, lite.ContentPolicyFallbacks.Count > 0,
            () => router.ContentPolicyFallbacks = lite.ContentPolicyFallbacks);
        Take("num_retries", router.NumRetries is not null, lite.NumRetries is not null, () => router.NumRetries = lite.NumRetries);
        Take("retry_policy", router.RetryPolicy.IsSet, lite.RetryPolicy.IsSet, () => router.RetryPolicy = lite.RetryPolicy);
        // LiteLLM's process-wide name is request_timeout; litellm_settings.timeout is read as the same, after it.
        var liteTimeout = lite.RequestTimeout is not null ? "request_timeout" : "timeout";
        if (lite.RequestTimeout is not null && lite.Timeout is not null)
        {
            _overridden.Add(("litellm_settings:request_timeout", "litellm_settings:timeout"));
        }
        Take("timeout", router.Timeout is not null, (lite.RequestTimeout ?? lite.Timeout) is not null,
            () => router.Timeout = lite.RequestTimeout ?? lite.Timeout, liteTimeout);

        void Take(string key, bool inRouter, bool inLiteLlm, Action copy, string? liteKey = null)
        {
            liteKey ??= key;
            if (inRouter && inLiteLlm)
            {
                _overridden.Add(($"router_settings:{key}", $"litellm_settings:{liteKey}"));
            }
            else if (inLiteLlm)
            {
                copy();
                router.From[key] = $"litellm_settings:{liteKey}";
            }
        }
    }
}

internal sealed class GeneralSettings
{
    /// <summary>
    /// The admin key (LiteLLM's): a literal, <c>${VAR}</c> or <c>os.environ/VAR</c>. When absent, the environment
    /// variable <c>LITELLM_MASTER_KEY</c> is used, as LiteLLM does.
    /// </summary>
    [ConfigurationKeyName("master_key")]
    public string? MasterKey { get; set; }

    /// <summary>Onyx's addition: API keys declared in the file rather than made with <c>/key/generate</c>.</summary>
    [ConfigurationKeyName("keys")]
    public List<ConfiguredKey> Keys { get; set; } = [];
}

/// <summary>A key declared in the config file: the key through a reference, or only its SHA-256.</summary>
internal sealed class ConfiguredKey
{
    /// <summary><c>os.environ/VAR</c> or <c>${VAR}</c> (a literal key in a file is refused).</summary>
    [ConfigurationKeyName("key")]
    public string? Key { get; set; }

    /// <summary>The key's SHA-256, lowercase hex (<c>printf %s "$KEY" | sha256sum</c>).</summary>
    [ConfigurationKeyName("key_hash")]
    public string? KeyHash { get; set; }

    [ConfigurationKeyName("user_id")]
    public string? UserId { get; set; }

    [ConfigurationKeyName("key_alias")]
    public string? KeyAlias { get; set; }

    [ConfigurationKeyName("models")]
    public List<string> Models { get; set; } = [];

    [ConfigurationKeyName("rpm_limit")]
    public int? RpmLimit { get; set; }

    [ConfigurationKeyName("tpm_limit")]
    public int? TpmLimit { get; set; }

    [ConfigurationKeyName("max_parallel_requests")]
    public int? MaxParallelRequests { get; set; }

    /// <summary>LiteLLM's <c>max_budget</c>: US dollars the key may spend per <see cref="BudgetDuration"/> (or in all).</summary>
    [ConfigurationKeyName("max_budget")]
    public decimal? MaxBudget { get; set; }

    /// <summary>LiteLLM's <c>budget_duration</c>: <c>30s</c>, <c>1h</c>, <c>1d</c>, <c>30d</c>…</summary>
    [ConfigurationKeyName("budget_duration")]
    public string? BudgetDuration { get; set; }

    /// <summary>LiteLLM's <c>soft_budget</c>: spend at which the gateway warns, once per window.</summary>
    [ConfigurationKeyName("soft_budget")]
    public decimal? SoftBudget { get; set; }

    /// <summary>LiteLLM's <c>model_max_budget</c>: per alias, <c>budget_limit</c> and <c>time_period</c>.</summary>
    [ConfigurationKeyName("model_max_budget")]
    public Dictionary<string, ConfiguredModelBudget> ModelMaxBudget { get; set; } = [];
}

/// <summary>One alias's budget within a configured key (LiteLLM's <c>BudgetConfig</c>: either name of each field).</summary>
internal sealed class ConfiguredModelBudget
{
    [ConfigurationKeyName("budget_limit")]
    public decimal? BudgetLimit { get; set; }

    [ConfigurationKeyName("max_budget")]
    public decimal? MaxBudget { get; set; }

    [ConfigurationKeyName("time_period")]
    public string? TimePeriod { get; set; }

    [ConfigurationKeyName("budget_duration")]
    public string? BudgetDuration { get; set; }
}

internal sealed class ModelListEntry
{
    /// <summary>The alias clients ask for (<c>"model": "manus-primary"</c>).</summary>
    [ConfigurationKeyName("model_name")]
    public string? ModelName { get; set; }

    [ConfigurationKeyName("litellm_params")]
    public LiteLlmParams LiteLlmParams { get; set; } = new();

    /// <summary>LiteLLM's metadata of a deployment: what its model can do, and (Onyx reads them here too) its prices.</summary>
    [ConfigurationKeyName("model_info")]
    public ModelInfo ModelInfo { get; set; } = new();
}

/// <summary>
/// A deployment's price, in US dollars: LiteLLM's per-token names, or Onyx's per-million-token ones (the way
/// providers list prices). Accepted in <c>litellm_params</c> and in <c>model_info</c>.
/// </summary>
internal abstract class PriceFields
{
    [ConfigurationKeyName("input_cost_per_token")]
    public decimal? InputCostPerToken { get; set; }

    [ConfigurationKeyName("output_cost_per_token")]
    public decimal? OutputCostPerToken { get; set; }

    [ConfigurationKeyName("input_cost_per_million_tokens")]
    public decimal? InputCostPerMillionTokens { get; set; }

    [ConfigurationKeyName("output_cost_per_million_tokens")]
    public decimal? OutputCostPerMillionTokens { get; set; }

    /// <summary>LiteLLM's price of a prompt token read from the provider's prompt cache (per token).</summary>
    [ConfigurationKeyName("cache_read_input_token_cost")]
    public decimal? CacheReadInputTokenCost { get; set; }
}

/// <summary>LiteLLM's <c>model_info</c>: what the model behind a deployment can do, and its price.</summary>
internal sealed class ModelInfo : PriceFields
{
    /// <summary>The most output tokens the model gives; a request asking for more is refused with 400.</summary>
    [ConfigurationKeyName("max_output_tokens")]
    public int? MaxOutputTokens { get; set; }

    /// <summary>LiteLLM's older name for <see cref="MaxOutputTokens"/> (used when that is not set).</summary>
    [ConfigurationKeyName("max_tokens")]
    public int? MaxTokens { get; set; }

    /// <summary>The longest prompt the model takes, in tokens.</summary>
    [ConfigurationKeyName("max_input_tokens")]
    public int? MaxInputTokens { get; set; }

    /// <summary>Whether the model continues a trailing assistant message (true: resume by prefill; false: by replay).</summary>
    [ConfigurationKeyName("supports_assistant_prefill")]
    public bool? SupportsAssistantPrefill { get; set; }

    /// <summary>False: a request with <c>tools</c> skips this deployment rather than reaching a model that ignores them.</summary>
    [ConfigurationKeyName("supports_function_calling")]
    public bool? SupportsFunctionCalling { get; set; }

    /// <summary>False: a request with images skips this deployment.</summary>
    [ConfigurationKeyName("supports_vision")]
    public bool? SupportsVision { get; set; }

    /// <summary>False: a request with a <c>json_schema</c> response format skips this deployment.</summary>
    [ConfigurationKeyName("supports_response_schema")]
    public bool? SupportsResponseSchema { get; set; }
}

internal sealed class LiteLlmParams : PriceFields
{
    /// <summary>Provider prefix and the provider's model id: <c>together_ai/deepseek-ai/DeepSeek-V3</c>.</summary>
    [ConfigurationKeyName("model")]
    public string? Model { get; set; }

    /// <summary>A literal key, <c>${VAR}</c> or <c>os.environ/VAR</c>.</summary>
    [ConfigurationKeyName("api_key")]
    public string? ApiKey { get; set; }

    [ConfigurationKeyName("api_base")]
    public string? ApiBase { get; set; }

    /// <summary>Applied when the client sends neither <c>max_tokens</c> nor <c>max_completion_tokens</c>.</summary>
    [ConfigurationKeyName("max_tokens")]
    public int? MaxTokens { get; set; }

    /// <summary>Applied when the client sends no <c>temperature</c>.</summary>
    [ConfigurationKeyName("temperature")]
    public double? Temperature { get; set; }

    /// <summary>
    /// Accepted for compatibility. The client's own <c>stream</c> flag decides the response shape: forcing a
    /// stream on a client that asked for JSON would break every non-streaming SDK call.
    /// </summary>
    [ConfigurationKeyName("stream")]
    public bool? Stream { get; set; }

    /// <summary>
    /// Onyx's addition, per alias (read from the alias's first entry): continue a stream that breaks mid-answer on
    /// the next deployment (default true).
    /// </summary>
    [ConfigurationKeyName("resume_streams")]
    public bool? ResumeStreams { get; set; }

    /// <summary>
    /// Onyx's addition, per alias (read from the alias's first entry): with no first token after this long, start
    /// the next deployment in parallel; the first to produce a token serves the answer. Off unless set.
    /// </summary>
    [ConfigurationKeyName("hedge_after_ms")]
    public int? HedgeAfterMs { get; set; }

    /// <summary>Calls this deployment may have in flight (LiteLLM's name); more wait in a bounded queue or go elsewhere.</summary>
    [ConfigurationKeyName("max_parallel_requests")]
    public int? MaxParallelRequests { get; set; }

    /// <summary>
    /// Onyx's addition: how this deployment continues another one's broken answer — <c>prefill</c>,
    /// <c>prefix_flag</c>, <c>replay</c> or <c>none</c>. Default: by provider, or by
    /// <c>model_info.supports_assistant_prefill</c> when that is set.
    /// </summary>
    [ConfigurationKeyName("continuation")]
    public string? Continuation { get; set; }

    /// <summary>Ollama's context window in tokens (an Ollama option LiteLLM passes on).</summary>
    [ConfigurationKeyName("num_ctx")]
    public int? NumCtx { get; set; }

    /// <summary>LiteLLM's per-deployment limit: requests per minute (across replicas, with Redis); beyond it, skipped.</summary>
    [ConfigurationKeyName("rpm")]
    public int? Rpm { get; set; }

    /// <summary>LiteLLM's per-deployment limit: tokens per minute; a request that would pass it skips the deployment.</summary>
    [ConfigurationKeyName("tpm")]
    public int? Tpm { get; set; }

    /// <summary><c>litellm_settings.drop_params</c> for this deployment alone.</summary>
    [ConfigurationKeyName("drop_params")]
    public bool? DropParams { get; set; }
}

/// <summary>
/// The retry and fallback keys LiteLLM reads in either <c>router_settings</c> or <c>litellm_settings</c>
/// (<see cref="LiteLlmOptions.ApplyLiteLlmSettings"/>: the router's wins).
/// </summary>
internal abstract class RetryAndFallbackSettings
{
    [ConfigurationKeyName("default_fallbacks")]
    public List<string> DefaultFallbacks { get; set; } = [];

    /// <summary>LiteLLM's list form: <c>[{"manus-primary": ["manus-fallback"]}]</c>.</summary>
    [ConfigurationKeyName("fallbacks")]
    public List<Dictionary<string, List<string>>> Fallbacks { get; set; } = [];

    /// <summary>
    /// Retries of the same deployment after a failure worth retrying (a 5xx, a reset, a malformed stream, a 429 whose
    /// Retry-After is short), before anything reached the client (default 1). <see cref="RetryPolicy"/> sets it per class.
    /// </summary>
    [ConfigurationKeyName("num_retries")]
    public int? NumRetries { get; set; }

    /// <summary>LiteLLM's per-error-class retry counts; each overrides <see cref="NumRetries"/> for its class.</summary>
    [ConfigurationKeyName("retry_policy")]
    public RetryPolicySettings RetryPolicy { get; set; } = new();

    /// <summary>Where a request goes when a deployment says its prompt is too long: <c>[{"manus-primary": ["long-context"]}]</c>.</summary>
    [ConfigurationKeyName("context_window_fallbacks")]
    public List<Dictionary<string, List<string>>> ContextWindowFallbacks { get; set; } = [];

    /// <summary>Where a request goes when a provider's content policy refuses it (without this, the client gets the refusal).</summary>
    [ConfigurationKeyName("content_policy_fallbacks")]
    public List<Dictionary<string, List<string>>> ContentPolicyFallbacks { get; set; } = [];

    /// <summary>
    /// Seconds a request may take in all (default 600): a non-streamed attempt gets what is left of it, and a
    /// Retry-After is waited out only if it fits.
    /// </summary>
    [ConfigurationKeyName("timeout")]
    public double? Timeout { get; set; }
}

internal sealed class RouterSettings : RetryAndFallbackSettings
{
    /// <summary><c>simple-fallback</c> (config order) or <c>simple-shuffle</c> (random order within an alias).</summary>
    [ConfigurationKeyName("routing_strategy")]
    public string? RoutingStrategy { get; set; }

    /// <summary>Failures within the failure window that open a deployment's circuit breaker.</summary>
    [ConfigurationKeyName("allowed_fails")]
    public int AllowedFails { get; set; } = 3;

    /// <summary>Fallback aliases for every alias (the story's form; LiteLLM's <c>default_fallbacks</c>).</summary>
    [ConfigurationKeyName("fallback_models")]
    public List<string> FallbackModels { get; set; } = [];

    /// <summary>Seconds an opened breaker keeps a deployment out of rotation (default 60).</summary>
    [ConfigurationKeyName("cooldown_time")]
    public double? CooldownTime { get; set; }

    /// <summary>
    /// LiteLLM's key: before calling a deployment, check that the prompt fits its <c>model_info.max_input_tokens</c>
    /// (estimated with a tokenizer), and skip it if not. Off by default, as in LiteLLM.
    /// </summary>
    [ConfigurationKeyName("enable_pre_call_checks")]
    public bool EnablePreCallChecks { get; set; }

    /// <summary>
    /// Where a retry or fallback key was read from when not from this section (its full key, e.g.
    /// <c>litellm_settings:num_retries</c>); set by <see cref="LiteLlmOptions.ApplyLiteLlmSettings"/>.
    /// </summary>
    internal Dictionary<string, string> From { get; } = new(StringComparer.Ordinal);

    /// <summary>The full key a retry or fallback setting was read from, for messages that name it.</summary>
    public string KeyOf(string key) => From.TryGetValue(key, out var from) ? from : $"router_settings:{key}";
}

/// <summary>LiteLLM's <c>retry_policy</c>: retries of the same deployment per error class.</summary>
internal sealed class RetryPolicySettings
{
    [ConfigurationKeyName("BadRequestErrorRetries")]
    public int? BadRequestErrorRetries { get; set; }

    [ConfigurationKeyName("AuthenticationErrorRetries")]
    public int? AuthenticationErrorRetries { get; set; }

    [ConfigurationKeyName("TimeoutErrorRetries")]
    public int? TimeoutErrorRetries { get; set; }

    [ConfigurationKeyName("RateLimitErrorRetries")]
    public int? RateLimitErrorRetries { get; set; }

    [ConfigurationKeyName("ContentPolicyViolationErrorRetries")]
    public int? ContentPolicyViolationErrorRetries { get; set; }

    [ConfigurationKeyName("InternalServerErrorRetries")]
    public int? InternalServerErrorRetries { get; set; }

    public bool IsSet => BadRequestErrorRetries is not null || AuthenticationErrorRetries is not null || TimeoutErrorRetries is not null
        || RateLimitErrorRetries is not null || ContentPolicyViolationErrorRetries is not null || InternalServerErrorRetries is not null;
}

internal sealed class LiteLlmSettings : RetryAndFallbackSettings
{
    [ConfigurationKeyName("rate_limit")]
    public RateLimitSettings RateLimit { get; set; } = new();

    /// <summary>LiteLLM's process-wide request timeout in seconds: <c>router_settings.timeout</c> when that is not set.</summary>
    [ConfigurationKeyName("request_timeout")]
    public double? RequestTimeout { get; set; }

    /// <summary>
    /// LiteLLM's key: a provider-specific parameter (<c>top_k</c>, …) a deployment does not take is dropped for it
    /// instead of the deployment being skipped (<c>litellm_params.drop_params</c> sets it per deployment).
    /// </summary>
    [ConfigurationKeyName("drop_params")]
    public bool DropParams { get; set; }
}

/// <summary>The default limits of every user (a key's own limits override them); 0 means no limit.</summary>
internal sealed class RateLimitSettings
{
    public const int DefaultRpm = 100;
    public const int DefaultTpm = 100_000;

    [ConfigurationKeyName("rpm")]
    public int? Rpm { get; set; }

    [ConfigurationKeyName("tpm")]
    public int? Tpm { get; set; }

    /// <summary>Onyx's addition: requests one user may have in flight at once (none by default).</summary>
    [ConfigurationKeyName("max_parallel_requests")]
    public int? MaxParallelRequests { get; set; }
}
