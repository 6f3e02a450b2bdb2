using Onyx.Gateway.Configuration;

namespace Onyx.Gateway.Model;

/// <summary>
/// Aliases, their deployments and their fallback chains, built once at start-up from the LiteLLM config.
/// A chain is the alias's own deployments followed by those of its fallback aliases, in order, each once.
/// </summary>
internal sealed class RoutingTable
{
    private readonly Dictionary<string, Deployment[]> _chains;
    private readonly Dictionary<string, Deployment[]> _contextWindowChains;
    private readonly Dictionary<string, Deployment[]> _contentPolicyChains;

    private RoutingTable(IReadOnlyList<string> aliases, IReadOnlyList<Deployment> deployments,
        Dictionary<string, Deployment[]> chains, Dictionary<string, Deployment[]> contextWindowChains,
        Dictionary<string, Deployment[]> contentPolicyChains, bool shuffle, bool preCallChecks)
    {
        Aliases = aliases;
        Deployments = deployments;
        _chains = chains;
        _contextWindowChains = contextWindowChains;
        _contentPolicyChains = contentPolicyChains;
        ShuffleWithinAlias = shuffle;
        PreCallChecks = preCallChecks;
    }

    public IReadOnlyList<string> Aliases { get; }

    public IReadOnlyList<Deployment> Deployments { get; }

    /// <summary><c>simple-shuffle</c>: an alias's own deployments are tried in random order.</summary>
    public bool ShuffleWithinAlias { get; }

    /// <summary>
    /// <c>router_settings.enable_pre_call_checks</c>: a deployment whose <c>model_info.max_input_tokens</c> the prompt
    /// does not fit is skipped before it is called.
    /// </summary>
    public bool PreCallChecks { get; }

    public bool TryGetChain(string alias, out Deployment[] chain) => _chains.TryGetValue(alias, out chain!);

    /// <summary><c>context_window_fallbacks</c>: the deployments to try when one says the prompt is too long (null: the rest of the chain).</summary>
    public Deployment[]? ContextWindowFallbacks(string alias) => _contextWindowChains.GetValueOrDefault(alias);

    /// <summary><c>content_policy_fallbacks</c>: the deployments to try when a provider's content policy refuses (null: none, the client gets the refusal).</summary>
    public Deployment[]? ContentPolicyFallbacks(string alias) => _contentPolicyChains.GetValueOrDefault(alias);

    /// <summary>
    /// The most output tokens a request for <paramref name="alias"/> may ask for: the smallest
    /// <c>model_info.max_output_tokens</c> in its chain (fallbacks included, since any of them may serve it);
    /// null when none declares one or the alias is unknown.
    /// </summary>
    public int? MaxOutputTokens(string alias) =>
        _chains.TryGetValue(alias, out var chain) ? chain.Min(d => d.MaxOutputTokens) : null;

    /// <summary>Builds the table, or returns the configuration errors, each naming the offending key.</summary>
    public static RoutingTable Build(LiteLlmOptions options, OnyxOptions onyx, IConfiguration configuration, out List<string> errors)
    {
        errors = [];
        var unavailableServices = (onyx.UnavailableServices ?? string.Empty)
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .ToHashSet(StringComparer.OrdinalIgnoreCase);

        var deployments = new List<Deployment>();
        var dropParams = options.LiteLlmSettings.DropParams;
        var aliases = new List<string>();
        var ids = new HashSet<string>(StringComparer.Ordinal);

        if (options.ModelList.Count == 0)
        {
            errors.Add("model_list: at least one model is required.");
        }

        for (var i = 0; i < options.ModelList.Count; i++)
        {
            var entry = options.ModelList[i];
            var key = $"model_list:{i}";
            if (string.IsNullOrWhiteSpace(entry.ModelName))
            {
                errors.Add($"{key}:model_name is required.");
                continue;
            }
            var model = entry.LiteLlmParams.Model;
            var slash = model?.IndexOf('/') ?? -1;
            if (model is null || slash <= 0 || slash == model.Length - 1)
            {
                errors.Add($"{key}:litellm_params:model must be '<provider>/<model>' (supported providers: {ProviderCatalog.SupportedPrefixes}); got '{model}'.");
                continue;
            }
            var prefix = model[..slash];
            if (!ProviderCatalog.ByPrefix.TryGetValue(prefix, out var provider))
            {
                errors.Add($"{key}:litellm_params:model has an unknown provider prefix '{prefix}/' (supported: {ProviderCatalog.SupportedPrefixes}).");
                continue;
            }
            if (entry.LiteLlmParams.MaxTokens is < 1)
            {
                errors.Add($"{key}:litellm_params:max_tokens must be at least 1.");
            }
            var maxOutput = entry.ModelInfo.MaxOutputTokens ?? entry.ModelInfo.MaxTokens;
            if (maxOutput is < 1)
            {
                errors.Add($"{key}:model_info:max_output_tokens must be at least 1.");
            }
            else if (entry.LiteLlmParams.MaxTokens > maxOutput)
            {
                errors.Add($"{key}:litellm_params:max_tokens ({entry.LiteLlmParams.MaxTokens}) is more than model_info:max_output_tokens ({maxOutput}).");
            }
            if (entry.LiteLlmParams.MaxParallelRequests is < 1)
            {
                errors.Add($"{key}:litellm_params:max_parallel_requests must be at least 1.");
            }
            if (entry.LiteLlmParams.HedgeAfterMs is < 1)
            {
                errors.Add($"{key}:litellm_params:hedge_after_ms must be at least 1.");
            }
            if (entry.LiteLlmParams.Temperature is < 0 or > 2)
            {
                errors.Add($"{key}:litellm_params:temperature must be between 0 and 2.");
            }
            var price = Price.Resolve(entry, key, errors);
            var continuation = ContinuationOf(entry, provider, key, errors);
            if (entry.LiteLlmParams.NumCtx is < 1)
            {
                errors.Add($"{key}:litellm_params:num_ctx must be at least 1.");
            }
            if (entry.ModelInfo.MaxInputTokens is < 1)
            {
                errors.Add($"{key}:model_info:max_input_tokens must be at least 1.");
            }
            if (entry.LiteLlmParams.Rpm is < 1)
            {
                errors.Add($"{key}:litellm_params:rpm must be at least 1.");
            }
            if (entry.LiteLlmParams.Tpm is < 1)
            {
                errors.Add($"{key}:litellm_params:tpm must be at least 1.");
            }

            var explicitBase = EnvironmentReferences.Resolve(entry.LiteLlmParams.ApiBase, configuration);
            var baseText = explicitBase
                ?? (onyx.Providers.TryGetValue(prefix, out var over) ? over.ApiBase : null)
                ?? provider.DefaultApiBase;
            if (!Uri.TryCreate(baseText, UriKind.Absolute, out var apiBase) || apiBase.Scheme is not ("http" or "https"))
            {
                errors.Add($"{key}:litellm_params:api_base must be an absolute http(s) URL; got '{baseText}'.");
                continue;
            }

            string? unavailable = null;
            if (unavailableServices.Contains(apiBase.Host))
            {
                unavailable = $"service '{apiBase.Host}' is not running (reported by the AppHost)";
            }
            apiBase = ServiceDiscovery.Resolve(apiBase, configuration);

            var apiKey = EnvironmentReferences.Resolve(entry.LiteLlmParams.ApiKey, configuration);
            if (provider.RequiresApiKey && apiKey is null)
            {
                unavailable ??= $"no API key ({DescribeKeySource(entry.LiteLlmParams.ApiKey)} is not set)";
            }

            var id = model;
            for (var n = 2; !ids.Add(id); n++)
            {
                id = $"{model}#{n}";
            }
            deployments.Add(new Deployment
            {
                Id = id,
                Alias = entry.ModelName,
                Provider = provider,
                ProviderModel = model[(slash + 1)..],
                ApiBase = apiBase,
                ApiKey = apiKey,
                DefaultMaxTokens = entry.LiteLlmParams.MaxTokens,
                MaxOutputTokens = maxOutput,
                DefaultTemperature = entry.LiteLlmParams.Temperature,
                ResumeStreams = entry.LiteLlmParams.ResumeStreams ?? true,
                Continuation = continuation,
                MaxInputTokens = entry.ModelInfo.MaxInputTokens,
                // Ollama's window holds the prompt and the answer: room for the longest prompt and the longest answer.
                NumCtx = entry.LiteLlmParams.NumCtx
                    ?? (entry.ModelInfo.MaxInputTokens is { } input ? input + (maxOutput ?? entry.LiteLlmParams.MaxTokens ?? 0) : null),
                SupportsFunctionCalling = entry.ModelInfo.SupportsFunctionCalling,
                SupportsVision = entry.ModelInfo.SupportsVision,
                SupportsResponseSchema = entry.ModelInfo.SupportsResponseSchema,
                MaxParallelRequests = entry.LiteLlmParams.MaxParallelRequests,
                Rpm = entry.LiteLlmParams.Rpm,
                Tpm = entry.LiteLlmParams.Tpm,
                DropParams = entry.LiteLlmParams.DropParams ?? dropParams,
                HedgeAfter = entry.LiteLlmParams.HedgeAfterMs is { } hedge ? TimeSpan.FromMilliseconds(hedge) : null,
                UnavailableReason = unavailable,
                Price = price,
            });
            if (!aliases.Contains(entry.ModelName, StringComparer.Ordinal))
            {
                aliases.Add(entry.ModelName);
            }
        }

        var router = options.RouterSettings;
        if (router.AllowedFails < 1)
        {
            errors.Add("router_settings:allowed_fails must be at least 1.");
        }
        if (router.CooldownTime is <= 0)
        {
            errors.Add("router_settings:cooldown_time must be a positive number of seconds.");
        }
        if (router.Timeout is <= 0)
        {
            errors.Add($"{router.KeyOf("timeout")} must be a positive number of seconds.");
        }
        var strategy = router.RoutingStrategy ?? "simple-fallback";

        var defaultFallbacks = router.FallbackModels.Concat(router.DefaultFallbacks).ToList();
        for (var i = 0; i < defaultFallbacks.Count; i++)
        {
            if (!aliases.Contains(defaultFallbacks[i]))
            {
                var from = i < router.FallbackModels.Count ? "router_settings:fallback_models" : router.KeyOf("default_fallbacks");
                errors.Add($"{from} names '{defaultFallbacks[i]}', which is not a model_name in model_list.");
            }
        }
        var perAlias = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        for (var i = 0; i < router.Fallbacks.Count; i++)
        {
            foreach (var (from, to) in router.Fallbacks[i])
            {
                if (!aliases.Contains(from))
                {
                    errors.Add($"{router.KeyOf("fallbacks")}:{i} names '{from}', which is not a model_name in model_list.");
                }
                foreach (var target in to.Where(t => !aliases.Contains(t)))
                {
                    errors.Add($"{router.KeyOf("fallbacks")}:{i}:{from} names '{target}', which is not a model_name in model_list.");
                }
                perAlias[from] = to;
            }
        }

        var chains = new Dictionary<string, Deployment[]>(StringComparer.Ordinal);
        foreach (var alias in aliases)
        {
            var chainAliases = new List<string> { alias };
            chainAliases.AddRange(perAlias.TryGetValue(alias, out var specific) ? specific : defaultFallbacks);
            chains[alias] = DeploymentsOf(chainAliases, deployments);
        }
        var contextWindowChains = SpecialFallbacks(router.ContextWindowFallbacks, router.KeyOf("context_window_fallbacks"), aliases, deployments, errors);
        var contentPolicyChains = SpecialFallbacks(router.ContentPolicyFallbacks, router.KeyOf("content_policy_fallbacks"), aliases, deployments, errors);
        return new RoutingTable(aliases, deployments, chains, contextWindowChains, contentPolicyChains, strategy == "simple-shuffle",
            router.EnablePreCallChecks);
    }

    private static Deployment[] DeploymentsOf(IEnumerable<string> aliases, List<Deployment> deployments) => aliases
        .Distinct(StringComparer.Ordinal)
        .SelectMany(a => deployments.Where(d => d.Alias == a))
        .ToArray();

    /// <summary>LiteLLM's list form <c>[{"alias": ["fallback", …]}]</c> for one kind of refusal, as deployment lists per alias.</summary>
    private static Dictionary<string, Deployment[]> SpecialFallbacks(List<Dictionary<string, List<string>>> entries, string key,
        List<string> aliases, List<Deployment> deployments, List<string> errors)
    {
        var result = new Dictionary<string, Deployment[]>(StringComparer.Ordinal);
        for (var i = 0; i < entries.Count; i++)
        {
            foreach (var (from, to) in entries[i])
            {
                if (!aliases.Contains(from))
                {
                    errors.Add($"{key}:{i} names '{from}', which is not a model_name in model_list.");
                }
                foreach (var target in to.Where(t => !aliases.Contains(t)))
                {
                    errors.Add($"{key}:{i}:{from} names '{target}', which is not a model_name in model_list.");
                }
                result[from] = DeploymentsOf(to, deployments);
            }
        }
        return result;
    }

    /// <summary>
    /// <c>litellm_params.continuation</c> when set; else LiteLLM's <c>model_info.supports_assistant_prefill</c> (true:
    /// the provider's own prefill form, false: replay); else the provider's default.
    /// </summary>
    private static ContinuationStyle ContinuationOf(ModelListEntry entry, ProviderInfo provider, string key, List<string> errors)
    {
        switch (entry.LiteLlmParams.Continuation)
        {
            case null or "":
                break;
            case "prefill":
                return ContinuationStyle.Prefill;
            case "prefix_flag":
                return ContinuationStyle.PrefixFlag;
            case "replay":
                return ContinuationStyle.Replay;
            case "none":
                return ContinuationStyle.None;
            default:
                errors.Add($"{key}:litellm_params:continuation must be prefill, prefix_flag, replay or none; got '{entry.LiteLlmParams.Continuation}'.");
                break;
        }
        return entry.ModelInfo.SupportsAssistantPrefill switch
        {
            true => provider.Continuation == ContinuationStyle.PrefixFlag ? ContinuationStyle.PrefixFlag : ContinuationStyle.Prefill,
            false => ContinuationStyle.Replay,
            null => provider.Continuation,
        };
    }

    private static string DescribeKeySource(string? reference) => reference switch
    {
        null or "" => "litellm_params:api_key",
        _ when reference.StartsWith("os.environ/", StringComparison.Ordinal) => reference["os.environ/".Length..],
        _ when reference.Contains("${", StringComparison.Ordinal) => reference.Replace("${", "", StringComparison.Ordinal).Replace("}", "", StringComparison.Ordinal),
        _ => "litellm_params:api_key",
    };
}
