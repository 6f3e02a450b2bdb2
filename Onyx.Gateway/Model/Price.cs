using Onyx.Gateway.Configuration;
using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Model;

/// <summary>
/// What a deployment charges, in US dollars per token: input, output, and input read from the provider's prompt cache
/// (LiteLLM's <c>cache_read_input_token_cost</c>; without it, cached tokens cost what other input tokens cost).
/// </summary>
internal sealed record Price(decimal InputPerToken, decimal OutputPerToken, decimal? CacheReadPerToken = null)
{
    private const decimal PerMillion = 1_000_000m;

    /// <summary>The cost of a call's tokens, rounded to a millionth of a cent.</summary>
    public decimal CostOf(TokenUsage usage)
    {
        var cached = Math.Clamp(usage.CachedPrompt, 0, usage.Prompt);
        return Math.Round((usage.Prompt - cached) * InputPerToken + cached * (CacheReadPerToken ?? InputPerToken) + usage.Completion * OutputPerToken, 8);
    }

    /// <summary>The most one prompt token can cost (cached or not): for an upper bound of a call's cost.</summary>
    public decimal MostPerInputToken => Math.Max(InputPerToken, CacheReadPerToken ?? 0);

    /// <summary>
    /// The price of one <c>model_list</c> entry: LiteLLM's <c>input_cost_per_token</c> / <c>output_cost_per_token</c>
    /// or Onyx's <c>..._per_million_tokens</c>, in <c>litellm_params</c> or <c>model_info</c>. Null when none is given
    /// (the call then has no cost); a missing side of a given price is free.
    /// </summary>
    public static Price? Resolve(ModelListEntry entry, string key, List<string> errors)
    {
        var input = One(key, "input", entry.LiteLlmParams, entry.ModelInfo, errors);
        var output = One(key, "output", entry.LiteLlmParams, entry.ModelInfo, errors);
        var cacheRead = CacheRead(key, entry.LiteLlmParams, entry.ModelInfo, errors);
        return input is null && output is null && cacheRead is null ? null : new Price(input ?? 0, output ?? 0, cacheRead);
    }

    private static decimal? CacheRead(string key, PriceFields litellmParams, PriceFields modelInfo, List<string> errors)
    {
        var given = new[] { ("litellm_params", litellmParams.CacheReadInputTokenCost), ("model_info", modelInfo.CacheReadInputTokenCost) }
            .Where(g => g.Item2 is not null)
            .Select(g => (Name: $"{key}:{g.Item1}:cache_read_input_token_cost", PerToken: g.Item2!.Value))
            .ToList();
        if (given.FirstOrDefault(g => g.PerToken < 0) is { Name: not null } negative)
        {
            errors.Add($"{negative.Name} must not be negative.");
            return null;
        }
        if (given.Select(g => g.PerToken).Distinct().Count() > 1)
        {
            errors.Add($"{string.Join(" and ", given.Select(g => g.Name))} give different prices; give one.");
            return null;
        }
        return given.Count == 0 ? null : given[0].PerToken;
    }

    private static decimal? One(string key, string side, PriceFields litellmParams, PriceFields modelInfo, List<string> errors)
    {
        var given = new List<(string Name, decimal PerToken)>();
        foreach (var (section, fields) in new[] { ("litellm_params", litellmParams), ("model_info", modelInfo) })
        {
            var (perToken, perMillion) = side == "input"
                ? (fields.InputCostPerToken, fields.InputCostPerMillionTokens)
                : (fields.OutputCostPerToken, fields.OutputCostPerMillionTokens);
            if (perToken is { } token)
            {
                given.Add(($"{key}:{section}:{side}_cost_per_token", token));
            }
            if (perMillion is { } million)
            {
                given.Add(($"{key}:{section}:{side}_cost_per_million_tokens", million / PerMillion));
            }
        }
        if (given.FirstOrDefault(g => g.PerToken < 0) is { Name: not null } negative)
        {
            errors.Add($"{negative.Name} must not be negative.");
            return null;
        }
        if (given.Select(g => g.PerToken).Distinct().Count() > 1)
        {
            errors.Add($"{string.Join(" and ", given.Select(g => g.Name))} give different prices; give one.");
            return null;
        }
        return given.Count == 0 ? null : given[0].PerToken;
    }
}
