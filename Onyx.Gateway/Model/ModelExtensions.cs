using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;

namespace Onyx.Gateway.Model;

internal static class ModelExtensions
{
    /// <summary>
    /// The routing table built from the bound options (its errors fail start-up with the others, by name), the
    /// tokenizer-backed estimator, and the start-up report of each deployment.
    /// </summary>
    public static IHostApplicationBuilder AddRoutingTable(this IHostApplicationBuilder builder)
    {
        builder.Services.AddSingleton<IValidateOptions<LiteLlmOptions>, RoutingTableValidator>();
        builder.Services.AddSingleton(services =>
        {
            var table = RoutingTable.Build(
                services.GetRequiredService<IOptions<LiteLlmOptions>>().Value,
                services.GetRequiredService<IOptions<OnyxOptions>>().Value,
                services.GetRequiredService<IConfiguration>(),
                out var errors);
            return errors.Count == 0 ? table : throw new OptionsValidationException(nameof(LiteLlmOptions), typeof(LiteLlmOptions), errors);
        });
        builder.Services.AddSingleton<TokenEstimator>();
        builder.Services.AddHostedService<RoutingTableReport>();
        return builder;
    }
}

/// <summary>What makes the config file's model list unusable (an alias with no deployment, a fallback to nowhere, …).</summary>
internal sealed class RoutingTableValidator(IConfiguration configuration, IOptions<OnyxOptions> onyx) : IValidateOptions<LiteLlmOptions>
{
    public ValidateOptionsResult Validate(string? name, LiteLlmOptions options)
    {
        RoutingTable.Build(options, onyx.Value, configuration, out var errors);
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
