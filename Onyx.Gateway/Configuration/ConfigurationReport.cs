using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using NetEscapades.Configuration.Yaml;

namespace Onyx.Gateway.Configuration;

/// <summary>
/// Says once, at start-up, what the gateway made of its config file: every key that is accepted but not acted on —
/// never silently ignored — and every key another one overrides. (The deployments are reported by
/// <c>Model.RoutingTableReport</c>.)
/// </summary>
internal sealed partial class ConfigurationReport(
    IConfiguration configuration, IOptions<LiteLlmOptions> options, IEnumerable<OnyxSetting> onyxSettings, ILogger<ConfigurationReport> logger) : IHostedService
{
    /// <summary>Keys the gateway acts on; <c>*</c> stands for a list index or a free-form name.</summary>
    private static readonly Regex[] Implemented =
    [
        Pattern("model_list:*:model_name"),
        Pattern("model_list:*:litellm_params:model"),
        Pattern("model_list:*:litellm_params:api_key"),
        Pattern("model_list:*:litellm_params:api_base"),
        Pattern("model_list:*:litellm_params:max_tokens"),
        Pattern("model_list:*:litellm_params:temperature"),
        Pattern("model_list:*:litellm_params:resume_streams"),
        Pattern("model_list:*:litellm_params:hedge_after_ms"),
        Pattern("model_list:*:litellm_params:max_parallel_requests"),
        Pattern("model_list:*:litellm_params:input_cost_per_token"),
        Pattern("model_list:*:litellm_params:output_cost_per_token"),
        Pattern("model_list:*:litellm_params:input_cost_per_million_tokens"),
        Pattern("model_list:*:litellm_params:output_cost_per_million_tokens"),
        Pattern("model_list:*:model_info:input_cost_per_token"),
        Pattern("model_list:*:model_info:output_cost_per_token"),
        Pattern("model_list:*:model_info:input_cost_per_million_tokens"),
        Pattern("model_list:*:model_info:output_cost_per_million_tokens"),
        Pattern("model_list:*:litellm_params:cache_read_input_token_cost"),
        Pattern("model_list:*:model_info:cache_read_input_token_cost"),
        Pattern("model_list:*:model_info:max_output_tokens"),
        Pattern("model_list:*:model_info:max_tokens"),
        Pattern("model_list:*:model_info:max_input_tokens"),
        Pattern("model_list:*:model_info:supports_assistant_prefill"),
        Pattern("model_list:*:model_info:supports_function_calling"),
        Pattern("model_list:*:model_info:supports_vision"),
        Pattern("model_list:*:model_info:supports_response_schema"),
        Pattern("model_list:*:litellm_params:continuation"),
        Pattern("model_list:*:litellm_params:num_ctx"),
        Pattern("model_list:*:litellm_params:rpm"),
        Pattern("model_list:*:litellm_params:tpm"),
        Pattern("model_list:*:litellm_params:drop_params"),
        Pattern("router_settings:routing_strategy"),
        Pattern("router_settings:allowed_fails"),
        Pattern("router_settings:fallback_models:*"),
        Pattern("router_settings:default_fallbacks:*"),
        Pattern("router_settings:fallbacks:*:*:*"),
        Pattern("router_settings:cooldown_time"),
        Pattern("router_settings:timeout"),
        Pattern("router_settings:num_retries"),
        Pattern("router_settings:retry_policy:BadRequestErrorRetries"),
        Pattern("router_settings:retry_policy:AuthenticationErrorRetries"),
        Pattern("router_settings:retry_policy:TimeoutErrorRetries"),
        Pattern("router_settings:retry_policy:RateLimitErrorRetries"),
        Pattern("router_settings:retry_policy:ContentPolicyViolationErrorRetries"),
        Pattern("router_settings:retry_policy:InternalServerErrorRetries"),
        Pattern("router_settings:context_window_fallbacks:*:*:*"),
        Pattern("router_settings:content_policy_fallbacks:*:*:*"),
        Pattern("router_settings:enable_pre_call_checks"),
        Pattern("router_settings:redis_host"),
        Pattern("router_settings:redis_port"),
        Pattern("router_settings:redis_password"),
        Pattern("router_settings:redis_url"),
        // LiteLLM reads these here when router_settings does not set them (LiteLlmOptions.ApplyLiteLlmSettings).
        Pattern("litellm_settings:fallbacks:*:*:*"),
        Pattern("litellm_settings:default_fallbacks:*"),
        Pattern("litellm_settings:context_window_fallbacks:*:*:*"),
        Pattern("litellm_settings:content_policy_fallbacks:*:*:*"),
        Pattern("litellm_settings:num_retries"),
        Pattern("litellm_settings:retry_policy:BadRequestErrorRetries"),
        Pattern("litellm_settings:retry_policy:AuthenticationErrorRetries"),
        Pattern("litellm_settings:retry_policy:TimeoutErrorRetries"),
        Pattern("litellm_settings:retry_policy:RateLimitErrorRetries"),
        Pattern("litellm_settings:retry_policy:ContentPolicyViolationErrorRetries"),
        Pattern("litellm_settings:retry_policy:InternalServerErrorRetries"),
        Pattern("litellm_settings:request_timeout"),
        Pattern("litellm_settings:timeout"),
        Pattern("litellm_settings:drop_params"),
        Pattern("litellm_settings:rate_limit:rpm"),
        Pattern("litellm_settings:rate_limit:tpm"),
        Pattern("litellm_settings:rate_limit:max_parallel_requests"),
        Pattern("general_settings:master_key"),
        Pattern("general_settings:keys:*:*"),
        Pattern("general_settings:keys:*:models:*"),
        Pattern("general_settings:keys:*:model_max_budget:*:*"),
        Pattern("general_settings:audit:include_content"),
        // Checked against the settings the gateway reads, from every source (OnyxSettings.UnknownKeys).
        Pattern("Onyx:**"),
    ];

    private static readonly (Regex Key, string Why)[] Explained =
    [
        (Pattern("model_list:*:litellm_params:stream"), "the client's own 'stream' flag decides the response shape"),
    ];

    public Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var key in FileKeys().Where(k => LiteralApiKey().IsMatch(k)))
        {
            // A provider key written into the file travels with it (repositories, images, backups): secrets belong in
            // the environment or an Aspire secret parameter. Accepted, as LiteLLM does, but said plainly.
            if (configuration[key] is { Length: > 0 } value && EnvironmentReferences.Resolve(value, configuration) == value)
            {
                Log.LiteralProviderKey(logger, key);
            }
        }
        foreach (var (used, overridden) in options.Value.Overridden)
        {
            Log.KeyOverridden(logger, overridden, used);
        }
        // Aspire's connection (Cluster/ClusterExtensions.RedisConnectionName) wins over the file's, as there.
        if (!string.IsNullOrWhiteSpace(configuration.GetConnectionString("redis")))
        {
            if (LiteLlmRedis.IsNamed(configuration))
            {
                Log.AspireRedisWins(logger);
            }
        }
        else if (LiteLlmRedis.Read(configuration, out _) is { } redis)
        {
            Log.RedisFromConfigFile(logger, redis.EndPoint, redis.NamedBy);
        }
        var strategy = configuration["router_settings:routing_strategy"];
        if (strategy is not (null or "simple-fallback" or "simple-shuffle"))
        {
            Log.StrategyNotImplemented(logger, strategy);
        }
        foreach (var key in FileKeys())
        {
            if (Implemented.Any(p => p.IsMatch(key)) || IsSupportedCallback(key))
            {
                continue;
            }
            var why = Explained.FirstOrDefault(e => e.Key.IsMatch(key)).Why;
            Log.KeyIgnored(logger, key, string.IsNullOrEmpty(why) ? "not implemented yet" : why);
        }
        foreach (var key in OnyxSettings.UnknownKeys(configuration, onyxSettings))
        {
            // From any source (file, environment, appsettings): most likely a typo, and its setting keeps its default.
            Log.OnyxKeyUnknown(logger, key);
        }
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// <c>success_callback: ["prometheus"]</c> is <c>/metrics</c> (served whatever the file says) and
    /// <c>failure_callback: ["sentry"]</c> is Sentry (active when <c>SENTRY_DSN</c> is set); other callbacks are not.
    /// </summary>
    private bool IsSupportedCallback(string key) => (Callback().Match(key), configuration[key]) switch
    {
        ({ Success: true } match, "prometheus") when match.Groups[1].Value == "success" => true,
        ({ Success: true } match, "sentry") when match.Groups[1].Value == "failure" => true,
        _ => false,
    };

    [GeneratedRegex(@"^litellm_settings:(success|failure)_callback:\d+$")]
    private static partial Regex Callback();

    [GeneratedRegex(@"^(model_list:\d+:litellm_params:api_key|router_settings:redis_password)$")]
    private static partial Regex LiteralApiKey();

    private IEnumerable<string> FileKeys()
    {
        if (configuration is not IConfigurationRoot root)
        {
            return [];
        }
        var yaml = root.Providers.OfType<YamlConfigurationProvider>().LastOrDefault();
        if (yaml is null)
        {
            return [];
        }
        var keys = new List<string>();
        Collect(yaml, null, keys);
        return keys.Distinct(StringComparer.OrdinalIgnoreCase).Order(StringComparer.Ordinal);
    }

    private static void Collect(IConfigurationProvider provider, string? parent, List<string> keys)
    {
        var children = provider.GetChildKeys([], parent).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        foreach (var child in children)
        {
            var path = parent is null ? child : $"{parent}:{child}";
            if (provider.TryGet(path, out _))
            {
                keys.Add(path);
            }
            Collect(provider, path, keys);
        }
    }

    private static Regex Pattern(string key)
    {
        var escaped = Regex.Escape(key).Replace(@"\*\*", ".+", StringComparison.Ordinal).Replace(@"\*", "[^:]+", StringComparison.Ordinal);
        return new Regex("^" + escaped + "$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
    }

    private static partial class Log
    {
        [LoggerMessage(1004, LogLevel.Warning, "Config key {Key} is accepted but ignored: {Reason}")]
        public static partial void KeyIgnored(ILogger logger, string key, string reason);

        [LoggerMessage(1006, LogLevel.Warning, "{Key} is written in the config file; reference a secret instead (os.environ/VAR, set from an Aspire secret parameter or the environment)")]
        public static partial void LiteralProviderKey(ILogger logger, string key);

        [LoggerMessage(1005, LogLevel.Warning, "router_settings:routing_strategy '{Strategy}' is not implemented; deployments are tried in config order (simple-fallback)")]
        public static partial void StrategyNotImplemented(ILogger logger, string strategy);

        [LoggerMessage(1010, LogLevel.Warning, "Config key {Key} is ignored: {UsedKey} is set too, and wins (LiteLLM's precedence)")]
        public static partial void KeyOverridden(ILogger logger, string key, string usedKey);

        [LoggerMessage(1014, LogLevel.Warning, "Config key {Key} is not a setting of the gateway and is ignored (a typo? see docs/configuration.md)")]
        public static partial void OnyxKeyUnknown(ILogger logger, string key);

        [LoggerMessage(1012, LogLevel.Information, "Shared state is in Redis at {Endpoint}, named by {Keys} in the config file (ConnectionStrings:redis is not set)")]
        public static partial void RedisFromConfigFile(ILogger logger, string endpoint, string keys);

        [LoggerMessage(1013, LogLevel.Warning, "Redis is named twice: ConnectionStrings:redis (Aspire) is used; router_settings redis_host/redis_port/redis_password/redis_url are not")]
        public static partial void AspireRedisWins(ILogger logger);
    }
}
