using Onyx.Gateway.Configuration;
using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Spend;

/// <summary>What a deployment charges, in US dollars per token (input and output).</summary>
internal sealed record Price(decimal InputPerToken, decimal OutputPerToken)
{
    private const decimal PerMillion = 1_000_000m;

    /// <summary>The cost of a call's tokens, rounded to a millionth of a cent.</summary>
    public decimal CostOf(TokenUsage usage) => Math.Round(usage.Prompt * InputPerToken + usage.Completion * OutputPerToken, 8);

    /// <summary>
    /// The price of one <c>model_list</c> entry: LiteLLM's <c>input_cost_per_token</c> / <c>output_cost_per_token</c>
    /// or Onyx's <c>..._per_million_tokens</c>, in <c>litellm_params</c> or <c>model_info</c>. Null when none is given
    /// (the call then has no cost); a missing side of a given price is free.
    /// </summary>
    public static Price? Resolve(ModelListEntry entry, string key, List<string> errors)
    {
        var input = One(key, "input", entry.LiteLlmParams, entry.ModelInfo, errors);
        var output = One(key, "output", entry.LiteLlmParams, entry.ModelInfo, errors);
        return input is null && output is null ? null : new Price(input ?? 0, output ?? 0);
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
