using Microsoft.Extensions.Logging;
using Onyx.AppHost.Configuration;
using Onyx.AppHost.Infrastructure;
using Onyx.AppHost.Ollama;

namespace Onyx.AppHost.Gateway;

/// <summary>Adds the Onyx gateway and wires it to its infrastructure, its LiteLLM config and the Together AI key.</summary>
internal static class GatewayBuilderExtensions
{
    public const string GatewayName = "gateway";
    public const int DefaultPort = 4000;
    public const string TogetherApiKeyParameterName = "together-api-key";
    public const string MasterKeyParameterName = "master-key";
    public const string SentryDsnParameterName = "sentry-dsn";

    /// <summary>Where the published gateway container finds the LiteLLM config.</summary>
    public const string PublishedLiteLlmConfigPath = "/app/litellm-config.yaml";

    public static IResourceBuilder<ProjectResource> AddGateway(this IDistributedApplicationBuilder builder, OnyxInfrastructure infrastructure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(infrastructure);

        var port = builder.Configuration.GetInt32(OnyxConfiguration.GatewayPort, DefaultPort, min: 1, max: 65535);
        var replicas = builder.Configuration.GetInt32(OnyxConfiguration.GatewayReplicas, defaultValue: 1, min: 1, max: 64);

        // The gateway's own launch profile (if it gets one) must not add endpoints: the AppHost owns the port.
        var gateway = builder.AddProject<Projects.Onyx_Gateway>(GatewayName, options => options.ExcludeLaunchProfile = true)
            .WithHttpEndpoint(port: port, name: "http")
            .WithExternalHttpEndpoints()
            .WithHttpHealthCheck("/health")
            .WithRunEnvironmentName()
            .WithInfrastructure(infrastructure)
            .WithLiteLlmConfig()
            .WithPrimaryBaseUrl()
            .WithTogetherApiKey()
            .WithMasterKey()
            .WithSentryDsn();

        if (replicas > 1)
        {
            gateway.WithReplicas(replicas);
        }

        return gateway;
    }

    /// <summary>
    /// Without a launch profile Aspire passes no environment name; when run, the gateway gets the AppHost's
    /// (Development from its launch profile), so it runs in the same environment as the AppHost.
    /// </summary>
    private static IResourceBuilder<ProjectResource> WithRunEnvironmentName(this IResourceBuilder<ProjectResource> gateway)
    {
        var builder = gateway.ApplicationBuilder;
        return builder.ExecutionContext.IsRunMode
            ? gateway.WithEnvironment("ASPNETCORE_ENVIRONMENT", builder.Environment.EnvironmentName)
            : gateway;
    }

    private static IResourceBuilder<ProjectResource> WithInfrastructure(this IResourceBuilder<ProjectResource> gateway, OnyxInfrastructure infrastructure)
    {
        if (infrastructure.Redis is { } redis)
        {
            gateway.WithReference(redis).WaitFor(redis);
        }

        if (infrastructure.Ollama is { } ollama)
        {
            gateway.WithReference(ollama.GetEndpoint(IOllamaServerResource.HttpEndpointName));
        }

        if (infrastructure.Model is { } model)
        {
            gateway.WithReference(model).WaitFor(model);
        }

        foreach (var (name, value) in infrastructure.Environment)
        {
            gateway.WithEnvironment(name, value);
        }

        return gateway;
    }

    /// <summary><c>LITELLM_CONFIG_PATH</c>: the repository's <c>litellm-config.yaml</c> when run, a container path when published.</summary>
    private static IResourceBuilder<ProjectResource> WithLiteLlmConfig(this IResourceBuilder<ProjectResource> gateway)
    {
        var builder = gateway.ApplicationBuilder;
        if (builder.ExecutionContext.IsPublishMode)
        {
            return gateway.WithEnvironment("LITELLM_CONFIG_PATH", PublishedLiteLlmConfigPath);
        }

        var path = Path.GetFullPath(Path.Combine(builder.AppHostDirectory, "..", "litellm-config.yaml"));
        if (!File.Exists(path))
        {
            builder.LogOnStart(logger => GatewayLog.LiteLlmConfigMissing(logger, path));
        }

        return gateway.WithEnvironment("LITELLM_CONFIG_PATH", path);
    }

    /// <summary>Any mode: <c>Onyx:Gateway:PrimaryBaseUrl</c> replaces Together AI's base URL (a self-hosted copy, or a test fake).</summary>
    private static IResourceBuilder<ProjectResource> WithPrimaryBaseUrl(this IResourceBuilder<ProjectResource> gateway)
    {
        var url = gateway.ApplicationBuilder.Configuration.GetHttpUrl(OnyxConfiguration.GatewayPrimaryBaseUrl);
        return url is null ? gateway : gateway.WithEnvironment("Onyx__Providers__together_ai__ApiBase", url);
    }

    /// <summary>
    /// <c>LITELLM_MASTER_KEY</c> from the secret parameter <c>master-key</c>. Without a value the gateway gets no key
    /// and serves loopback callers without one (it says so at start); a gateway listening beyond loopback refuses
    /// to start without it.
    /// </summary>
    private static IResourceBuilder<ProjectResource> WithMasterKey(this IResourceBuilder<ProjectResource> gateway) =>
        gateway.WithSecret(MasterKeyParameterName, OnyxConfiguration.MasterKeyParameter, "LITELLM_MASTER_KEY", GatewayLog.MasterKeyMissing);

    /// <summary>
    /// <c>TOGETHER_API_KEY</c> from the secret parameter <c>together-api-key</c>. Without a value the primary
    /// deployment is unavailable.
    /// </summary>
    private static IResourceBuilder<ProjectResource> WithTogetherApiKey(this IResourceBuilder<ProjectResource> gateway) =>
        gateway.WithSecret(TogetherApiKeyParameterName, OnyxConfiguration.TogetherApiKeyParameter, "TOGETHER_API_KEY", GatewayLog.TogetherApiKeyMissing);

    /// <summary>
    /// <c>SENTRY_DSN</c> from the secret parameter <c>sentry-dsn</c>, only when one is set: Sentry is optional, so
    /// neither a run nor a published manifest asks for it (a deployment may also set <c>SENTRY_DSN</c> itself).
    /// </summary>
    private static IResourceBuilder<ProjectResource> WithSentryDsn(this IResourceBuilder<ProjectResource> gateway)
    {
        var builder = gateway.ApplicationBuilder;
        return builder.Configuration.GetNonEmpty(OnyxConfiguration.SentryDsnParameter) is null
            ? gateway
            : gateway.WithEnvironment("SENTRY_DSN", builder.AddParameter(SentryDsnParameterName, secret: true));
    }

    /// <summary>
    /// An environment variable from a secret parameter. When run without a value the parameter is left out (Aspire
    /// would hold the gateway until someone types it in) and <paramref name="logMissing"/> says so at start; a
    /// published manifest always asks for it.
    /// </summary>
    private static IResourceBuilder<ProjectResource> WithSecret(this IResourceBuilder<ProjectResource> gateway, string parameterName,
        string configurationKey, string environmentVariable, Action<ILogger> logMissing)
    {
        var builder = gateway.ApplicationBuilder;
        if (builder.ExecutionContext.IsRunMode && builder.Configuration.GetNonEmpty(configurationKey) is null)
        {
            builder.LogOnStart(logMissing);
            return gateway;
        }

        return gateway.WithEnvironment(environmentVariable, builder.AddParameter(parameterName, secret: true));
    }
}
