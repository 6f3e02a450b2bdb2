using Onyx.AppHost.Configuration;
using Onyx.AppHost.Ollama;
using Onyx.AppHost.Redis;

namespace Onyx.AppHost.Infrastructure;

/// <summary>Adds Redis, Ollama and the fallback model the way <see cref="InfrastructureMode"/> says.</summary>
internal static class InfrastructureBuilderExtensions
{
    public const string RedisName = "redis";
    public const string OllamaName = "ollama";
    public const string ModelName = "mistral";
    public const string ModelReference = "mistral:7b-instruct";

    public static OnyxInfrastructure AddInfrastructure(this IDistributedApplicationBuilder builder, InfrastructureMode mode) => mode switch
    {
        InfrastructureMode.Containers => builder.AddContainerInfrastructure(),
        InfrastructureMode.Local => builder.AddLocalInfrastructure(),
        InfrastructureMode.External => builder.AddExternalInfrastructure(),
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "Settle Auto with InfrastructureModeSelector first."),
    };

    private static OnyxInfrastructure AddContainerInfrastructure(this IDistributedApplicationBuilder builder)
    {
        var redis = builder.AddRedis(RedisName);

        var ollama = builder.AddOllama(OllamaName).WithDataVolume();
        if (builder.Configuration.GetFlag(OnyxConfiguration.OllamaGpu))
        {
            ollama.WithGpuSupport();
        }

        var model = ollama.AddModel(ModelName, ModelReference);
        return new() { Redis = redis, Ollama = ollama, Model = model };
    }

    private static OnyxInfrastructure AddLocalInfrastructure(this IDistributedApplicationBuilder builder)
    {
        var redisServerPath = ExecutableLocator.FindOnPath("redis-server") ?? throw new DistributedApplicationException(
            $"{OnyxConfiguration.Infrastructure}=local needs `redis-server` on PATH (e.g. apt-get install redis-server), " +
            $"or use {OnyxConfiguration.Infrastructure}=external with {OnyxConfiguration.ExternalRedis}.");
        var redis = builder.AddRedisServer(RedisName, redisServerPath);
        builder.LogOnStart(logger => InfrastructureLog.LocalProgram(logger, "redis-server", redisServerPath));

        if (ExecutableLocator.FindOnPath("ollama") is not { } ollamaPath)
        {
            builder.AddOllamaUnavailable(OllamaName,
                "No container runtime and no `ollama` on PATH: the fallback deployment manus-fallback is unavailable.");
            builder.LogOnStart(InfrastructureLog.OllamaUnavailable);
            // Tells the gateway to report deployments at http://ollama:… unavailable instead of calling them.
            return new()
            {
                Redis = redis,
                Environment = new Dictionary<string, string> { ["Onyx__UnavailableServices"] = OllamaName },
            };
        }

        var ollama = builder.AddOllamaLocal(OllamaName, ollamaPath);
        builder.LogOnStart(logger => InfrastructureLog.LocalProgram(logger, "ollama", ollamaPath));

        var model = ollama.AddModel(ModelName, ModelReference);
        return new() { Redis = redis, Ollama = ollama, Model = model };
    }

    private static OnyxInfrastructure AddExternalInfrastructure(this IDistributedApplicationBuilder builder)
    {
        var redis = builder.Configuration.GetNonEmpty(OnyxConfiguration.ExternalRedis);
        var ollamaUrl = builder.Configuration.GetHttpUrl(OnyxConfiguration.ExternalOllamaUrl);

        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        if (redis is not null)
        {
            environment[$"ConnectionStrings__{RedisName}"] = redis;
        }

        if (ollamaUrl is not null)
        {
            environment[$"services__{OllamaName}__http__0"] = ollamaUrl;
            environment[$"ConnectionStrings__{ModelName}"] = $"Endpoint={ollamaUrl};Model={ModelReference}";
        }

        builder.LogOnStart(logger => InfrastructureLog.ExternalInfrastructure(
            logger,
            redis is null ? "not configured" : "configured",
            ollamaUrl ?? "not configured"));

        return new() { Environment = environment };
    }
}
