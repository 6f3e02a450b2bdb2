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

    /// <summary><c>Onyx:DataDirectory</c>, absolute: default <c>.onyx</c> beside the AppHost project.</summary>
    public static string DataDirectory(this IDistributedApplicationBuilder builder) =>
        Path.GetFullPath(builder.Configuration.GetNonEmpty(OnyxConfiguration.DataDirectory) ?? ".onyx", builder.AppHostDirectory);

    /// <summary>
    /// When run, the gateway keeps its audit spill files in the AppHost's data directory (not in its project folder),
    /// and, with <paramref name="trailName"/>, names its trail: the Redis the AppHost runs gets a new port on every run,
    /// and its spill files must still be replayed into it on the next. Published, the gateway's own defaults hold.
    /// </summary>
    private static Dictionary<string, string> AuditEnvironment(this IDistributedApplicationBuilder builder, string? trailName)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        if (builder.ExecutionContext.IsRunMode)
        {
            environment["Onyx__Audit__SpillDirectory"] = Path.Combine(builder.DataDirectory(), "audit");
            if (trailName is not null)
            {
                environment["Onyx__Audit__TrailName"] = trailName;
            }
        }
        return environment;
    }

    private static OnyxInfrastructure AddContainerInfrastructure(this IDistributedApplicationBuilder builder)
    {
        var redis = builder.AddRedis(RedisName).WithAppendOnlyPersistence(RedisPersistence.AppendFsync(builder.Configuration));

        var ollama = builder.AddOllama(OllamaName).WithDataVolume();
        if (builder.Configuration.GetFlag(OnyxConfiguration.OllamaGpu))
        {
            ollama.WithGpuSupport();
        }

        var model = ollama.AddModel(ModelName, ModelReference);
        return new() { Redis = redis, Ollama = ollama, Model = model, Environment = builder.AuditEnvironment("apphost-containers") };
    }

    private static OnyxInfrastructure AddLocalInfrastructure(this IDistributedApplicationBuilder builder)
    {
        var redisServerPath = ExecutableLocator.FindOnPath("redis-server") ?? throw new DistributedApplicationException(
            $"{OnyxConfiguration.Infrastructure}=local needs `redis-server` on PATH (e.g. apt-get install redis-server), " +
            $"or use {OnyxConfiguration.Infrastructure}=external with {OnyxConfiguration.ExternalRedis}.");
        var redisData = Path.Combine(builder.DataDirectory(), "redis");
        var appendFsync = RedisPersistence.AppendFsync(builder.Configuration);
        var redis = builder.AddRedisServer(RedisName, redisServerPath, redisData, appendFsync);
        var environment = builder.AuditEnvironment("apphost-local");
        builder.LogOnStart(logger => InfrastructureLog.LocalProgram(logger, "redis-server", redisServerPath));
        builder.LogOnStart(logger => RedisLog.LocalData(logger, redisData, appendFsync, environment["Onyx__Audit__SpillDirectory"]));

        if (ExecutableLocator.FindOnPath("ollama") is not { } ollamaPath)
        {
            builder.AddOllamaUnavailable(OllamaName,
                "No container runtime and no `ollama` on PATH: the fallback deployment manus-fallback is unavailable.");
            builder.LogOnStart(InfrastructureLog.OllamaUnavailable);
            // Tells the gateway to report deployments at http://ollama:… unavailable instead of calling them.
            environment["Onyx__UnavailableServices"] = OllamaName;
            return new() { Redis = redis, Environment = environment };
        }

        var ollama = builder.AddOllamaLocal(OllamaName, ollamaPath);
        builder.LogOnStart(logger => InfrastructureLog.LocalProgram(logger, "ollama", ollamaPath));

        var model = ollama.AddModel(ModelName, ModelReference);
        return new() { Redis = redis, Ollama = ollama, Model = model, Environment = environment };
    }

    private static OnyxInfrastructure AddExternalInfrastructure(this IDistributedApplicationBuilder builder)
    {
        var redis = builder.Configuration.GetNonEmpty(OnyxConfiguration.ExternalRedis);
        var ollamaUrl = builder.Configuration.GetHttpUrl(OnyxConfiguration.ExternalOllamaUrl);

        // The operator's Redis keeps its name from run to run: the trail is named by its connection string.
        var environment = builder.AuditEnvironment(trailName: null);
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
