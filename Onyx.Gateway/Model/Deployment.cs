
namespace Onyx.Gateway.Model;

/// <summary>One entry of <c>model_list</c>, resolved: where it lives, how to reach it and its defaults.</summary>
internal sealed class Deployment
{
    /// <summary>Stable, unique id: the LiteLLM model string (<c>together_ai/deepseek-ai/DeepSeek-V3</c>).</summary>
    public required string Id { get; init; }

    /// <summary>The alias this deployment serves.</summary>
    public required string Alias { get; init; }

    public required ProviderInfo Provider { get; init; }

    /// <summary>The provider's own model id, without the prefix.</summary>
    public required string ProviderModel { get; init; }

    public required Uri ApiBase { get; init; }

    /// <summary>The resolved key; never logged, never returned to a client.</summary>
    public string? ApiKey { get; init; }

    public int? DefaultMaxTokens { get; init; }

    /// <summary><c>model_info.max_output_tokens</c>: the most output tokens the model can give (none: unknown).</summary>
    public int? MaxOutputTokens { get; init; }

    public double? DefaultTemperature { get; init; }

    /// <summary>Whether a stream of this alias that breaks mid-answer is continued on the next deployment.</summary>
    public bool ResumeStreams { get; init; } = true;

    /// <summary>How this deployment is asked to continue another one's broken answer.</summary>
    public ContinuationStyle Continuation { get; init; } = ContinuationStyle.Prefill;

    /// <summary><c>model_info.max_input_tokens</c>: the longest prompt the model takes (none: unknown).</summary>
    public int? MaxInputTokens { get; init; }

    /// <summary>
    /// Ollama's context window (<c>litellm_params.num_ctx</c>, else worked out from <c>model_info</c>): sent with every
    /// call, since Ollama otherwise cuts a longer prompt to its small default without saying so.
    /// </summary>
    public int? NumCtx { get; init; }

    /// <summary><c>model_info.supports_function_calling</c>: false means a request with tools skips this deployment.</summary>
    public bool? SupportsFunctionCalling { get; init; }

    /// <summary><c>model_info.supports_vision</c>: false means a request with images skips this deployment.</summary>
    public bool? SupportsVision { get; init; }

    /// <summary><c>model_info.supports_response_schema</c>: false means a <c>json_schema</c> request skips this deployment.</summary>
    public bool? SupportsResponseSchema { get; init; }

    /// <summary>Calls it may have in flight at once (none: no limit).</summary>
    public int? MaxParallelRequests { get; init; }

    /// <summary><c>litellm_params.rpm</c>: requests it may take per minute (none: no limit); also its weight in <c>simple-shuffle</c>.</summary>
    public int? Rpm { get; init; }

    /// <summary><c>litellm_params.tpm</c>: tokens it may take per minute (none: no limit).</summary>
    public int? Tpm { get; init; }

    /// <summary>
    /// <c>drop_params</c>: a provider-specific parameter its provider does not take is left out of its calls, rather than
    /// the deployment being skipped for the request.
    /// </summary>
    public bool DropParams { get; init; }

    /// <summary>When set, a stream with no first token by then gets the next deployment started in parallel.</summary>
    public TimeSpan? HedgeAfter { get; init; }

    /// <summary>Why the deployment cannot be called at all (no key, service not running); null when it can.</summary>
    public string? UnavailableReason { get; init; }

    public bool IsAvailable => UnavailableReason is null;

    /// <summary>What its tokens cost (from the config's price table); null when the config names no price.</summary>
    public Price? Price { get; init; }

    /// <summary>
    /// Where chat requests go: the protocol's chat path after <see cref="ApiBase"/>'s own path (an upstream behind a
    /// path-routing proxy keeps it), worked out once.
    /// </summary>
    public Uri ChatEndpoint => _chatEndpoint ??= new Uri(ApiBase.AbsoluteUri.TrimEnd('/')
        + (Provider.Protocol == ProviderProtocol.OllamaNative ? "/api/chat" : "/chat/completions"));

    /// <summary><c>scheme://host:port</c>: deployments on one origin share a connection pool.</summary>
    public string Origin => _origin ??= ApiBase.GetLeftPart(UriPartial.Authority);

    private Uri? _chatEndpoint;
    private string? _origin;

    public override string ToString() => Id;
}
