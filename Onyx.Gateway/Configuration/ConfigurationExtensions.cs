using Microsoft.Extensions.Configuration.EnvironmentVariables;
using Microsoft.Extensions.Options;
using NetEscapades.Configuration.Yaml;

namespace Onyx.Gateway.Configuration;

internal static class ConfigurationExtensions
{
    /// <summary>Environment variable (the story's) and configuration key that name the LiteLLM config file.</summary>
    public const string ConfigPathVariable = "LITELLM_CONFIG_PATH";
    public const string ConfigPathKey = "Onyx:ConfigPath";

    /// <summary>
    /// Loads the LiteLLM-format YAML file as a configuration source placed *before* the environment variables,
    /// so environment and Aspire settings override it; binds and validates it at start-up.
    /// </summary>
    public static IHostApplicationBuilder AddGatewayConfiguration(this IHostApplicationBuilder builder)
    {
        var path = builder.Configuration[ConfigPathVariable] ?? builder.Configuration[ConfigPathKey];
        if (string.IsNullOrWhiteSpace(path))
        {
            throw new OptionsValidationException(ConfigPathVariable, typeof(LiteLlmOptions),
                [$"No LiteLLM config file: set {ConfigPathVariable} (or {ConfigPathKey}) to the path of litellm-config.yaml."]);
        }
        path = Path.GetFullPath(path, builder.Environment.ContentRootPath);
        if (!File.Exists(path))
        {
            throw new OptionsValidationException(ConfigPathVariable, typeof(LiteLlmOptions),
                [$"{ConfigPathVariable}: the LiteLLM config file '{path}' does not exist."]);
        }

        var sources = builder.Configuration.Sources;
        var firstEnvironment = sources.Select((source, index) => (source, index))
            .FirstOrDefault(s => s.source is EnvironmentVariablesConfigurationSource { Prefix: null or "" }).index;
        var yaml = new YamlConfigurationSource { Path = path, Optional = false, ReloadOnChange = false };
        yaml.ResolveFileProvider();
        try
        {
            sources.Insert(firstEnvironment > 0 ? firstEnvironment : 0, yaml);
        }
        catch (InvalidDataException error)
        {
            // The file provider wraps the YAML parser's complaint (which names the line) in one about the file.
            throw new OptionsValidationException(ConfigPathVariable, typeof(LiteLlmOptions),
                [$"{ConfigPathVariable}: '{path}' is not a valid LiteLLM config file: {(error.InnerException ?? error).Message}"]);
        }

        builder.Services.AddSingleton(new ConfigFileInfo(path));
        builder.AddOnyxKey(ConfigPathKey);
        builder.Services.AddOptions<LiteLlmOptions>().Bind(builder.Configuration)
            .PostConfigure(options => options.ApplyLiteLlmSettings())
            .ValidateOnStart();
        builder.AddOnyxOptions<OnyxOptions>(OnyxOptions.SectionName);
        builder.Services.AddSingleton<IValidateOptions<LiteLlmOptions>, LiteLlmOptionsValidator>();
        builder.Services.AddSingleton<IValidateOptions<OnyxOptions>, OnyxOptionsAnnotations>();
        builder.Services.AddSingleton<IValidateOptions<OnyxOptions>, OnyxOptionsValidator>();
        builder.Services.AddHostedService<ConfigurationReport>();
        return builder;
    }
}

internal sealed record ConfigFileInfo(string Path);

internal sealed class LiteLlmOptionsValidator(IConfiguration configuration) : IValidateOptions<LiteLlmOptions>
{
    public ValidateOptionsResult Validate(string? name, LiteLlmOptions options)
    {
        var errors = new List<string>();
        var router = options.RouterSettings;
        if (router.NumRetries is < 0 or > 10)
        {
            errors.Add($"{router.KeyOf("num_retries")} must be from 0 to 10.");
        }
        var policy = router.RetryPolicy;
        foreach (var (key, value) in new (string, int?)[]
        {
            ("BadRequestErrorRetries", policy.BadRequestErrorRetries), ("TimeoutErrorRetries", policy.TimeoutErrorRetries),
            ("RateLimitErrorRetries", policy.RateLimitErrorRetries), ("ContentPolicyViolationErrorRetries", policy.ContentPolicyViolationErrorRetries),
            ("InternalServerErrorRetries", policy.InternalServerErrorRetries), ("AuthenticationErrorRetries", policy.AuthenticationErrorRetries),
        })
        {
            if (value is < 0 or > 10)
            {
                errors.Add($"{router.KeyOf("retry_policy")}:{key} must be from 0 to 10.");
            }
        }
        if (policy.AuthenticationErrorRetries is > 0)
        {
            // A refused provider key opens the deployment's breaker at once (the key is wrong for every request), so a
            // retry could never be sent: the setting would be a promise the gateway does not keep.
            errors.Add($"{router.KeyOf("retry_policy")}:AuthenticationErrorRetries must be 0: a provider that refuses the gateway's key is taken out of rotation at once, so it is never retried.");
        }
        var limits = options.LiteLlmSettings.RateLimit;
        if (limits.Rpm < 0 || limits.Tpm < 0 || limits.MaxParallelRequests < 0)
        {
            errors.Add("litellm_settings:rate_limit: rpm, tpm and max_parallel_requests must not be negative (0 means no limit).");
        }
        if (LiteLlmRedis.Read(configuration, out var redisError) is null && redisError is not null)
        {
            errors.Add(redisError);
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>
/// The <c>Onyx:*</c> checks no attribute on a single value says: formats (addresses, networks, origins, URLs) and
/// names from a fixed set. Bounds of single values are attributes on the options (<see cref="OnyxOptionsAnnotations"/>).
/// </summary>
internal sealed class OnyxOptionsValidator : IValidateOptions<OnyxOptions>
{
    public ValidateOptionsResult Validate(string? name, OnyxOptions options)
    {
        var errors = new List<string>();
        if (options.Metrics.Access is not (MetricsAccess.Loopback or MetricsAccess.Open or MetricsAccess.MasterKey))
        {
            errors.Add($"Onyx:Metrics:Access must be loopback, open or master-key; got '{options.Metrics.Access}'.");
        }
        var forwarded = options.ForwardedHeaders;
        for (var i = 0; i < forwarded.KnownProxies.Count; i++)
        {
            if (!System.Net.IPAddress.TryParse(forwarded.KnownProxies[i], out _))
            {
                errors.Add($"Onyx:ForwardedHeaders:KnownProxies:{i} must be an IP address; got '{forwarded.KnownProxies[i]}'.");
            }
        }
        for (var i = 0; i < forwarded.KnownNetworks.Count; i++)
        {
            if (!System.Net.IPNetwork.TryParse(forwarded.KnownNetworks[i], out _))
            {
                errors.Add($"Onyx:ForwardedHeaders:KnownNetworks:{i} must be a network in CIDR form (10.0.0.0/8); got '{forwarded.KnownNetworks[i]}'.");
            }
        }
        foreach (var origin in options.Cors.AllowedOrigins)
        {
            if (!Uri.TryCreate(origin, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.AbsolutePath != "/" || origin.EndsWith('/'))
            {
                errors.Add($"Onyx:Cors:AllowedOrigins must list origins like 'https://app.example.com' (scheme, host, optional port; no path); got '{origin}'.");
            }
        }
        foreach (var (prefix, provider) in options.Providers)
        {
            if (provider.ApiBase is { } apiBase && !Uri.TryCreate(apiBase, UriKind.Absolute, out _))
            {
                errors.Add($"Onyx:Providers:{prefix}:ApiBase must be an absolute URL; got '{apiBase}'.");
            }
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
