using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace Onyx.AppHost.Ollama;

/// <summary>Adds Ollama servers and their models to the application model (shaped like Aspire's <c>RedisBuilderExtensions</c>).</summary>
internal static class OllamaBuilderExtensions
{
    private const string IconName = "BrainCircuit";
    private static readonly TimeSpan ModelHealthCheckTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Adds the pinned <c>ollama/ollama</c> container, healthy once <c>GET /api/tags</c> answers 200.</summary>
    /// <param name="builder">The application builder.</param>
    /// <param name="name">The resource name, also the service-discovery name of its <c>http</c> endpoint.</param>
    /// <param name="port">A fixed host port, or <see langword="null"/> for one chosen at run time.</param>
    public static IResourceBuilder<OllamaResource> AddOllama(this IDistributedApplicationBuilder builder, [ResourceName] string name, int? port = null)
    {
        ArgumentNullException.ThrowIfNull(builder);

        return builder.AddResource(new OllamaResource(name))
            .WithImage(OllamaContainerImageTags.Image, OllamaContainerImageTags.Tag)
            .WithImageRegistry(OllamaContainerImageTags.Registry)
            .WithHttpEndpoint(port: port, targetPort: OllamaResource.DefaultTargetPort, name: IOllamaServerResource.HttpEndpointName)
            .WithHttpHealthCheck("/api/tags", endpointName: IOllamaServerResource.HttpEndpointName)
            .WithIconName(IconName);
    }

    /// <summary>
    /// Adds <c>ollama serve</c> from a local binary, listening on a port chosen at run time (passed as <c>OLLAMA_HOST</c>),
    /// healthy once <c>GET /api/tags</c> answers 200. Run mode only: it is left out of the manifest.
    /// </summary>
    /// <param name="builder">The application builder.</param>
    /// <param name="name">The resource name, also the service-discovery name of its <c>http</c> endpoint.</param>
    /// <param name="ollamaPath">The full path of the <c>ollama</c> binary.</param>
    public static IResourceBuilder<OllamaExecutableResource> AddOllamaLocal(this IDistributedApplicationBuilder builder, [ResourceName] string name, string ollamaPath)
    {
        ArgumentNullException.ThrowIfNull(builder);

        var ollama = new OllamaExecutableResource(name, ollamaPath, builder.AppHostDirectory);
        return builder.AddResource(ollama)
            .WithArgs("serve")
            .WithHttpEndpoint(name: IOllamaServerResource.HttpEndpointName)
            .WithEnvironment(context => context.EnvironmentVariables["OLLAMA_HOST"] =
                ReferenceExpression.Create($"127.0.0.1:{ollama.PrimaryEndpoint.Property(EndpointProperty.TargetPort)}"))
            .WithHttpHealthCheck("/api/tags", endpointName: IOllamaServerResource.HttpEndpointName)
            .WithIconName(IconName)
            .ExcludeFromManifest();
    }

    /// <summary>Keeps pulled models in a named volume at <c>/root/.ollama</c>, so they survive container restarts.</summary>
    /// <param name="builder">The Ollama container.</param>
    /// <param name="name">The volume name; by default one derived from the application and resource names.</param>
    public static IResourceBuilder<OllamaResource> WithDataVolume(this IResourceBuilder<OllamaResource> builder, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(builder);

        return builder.WithVolume(name ?? VolumeNameGenerator.Generate(builder, "data"), OllamaResource.DataPath);
    }

    /// <summary>Gives the container all NVIDIA GPUs (<c>--gpus all</c>).</summary>
    /// <param name="builder">The Ollama container.</param>
    public static IResourceBuilder<OllamaResource> WithGpuSupport(this IResourceBuilder<OllamaResource> builder)
    {
        ArgumentNullException.ThrowIfNull(builder);

        return builder.WithContainerRuntimeArgs("--gpus", "all");
    }

    /// <summary>
    /// Adds a model that is pulled as soon as its server is ready, with the download progress as the resource's state,
    /// and that is healthy only while the server has it. Its connection string is <c>Endpoint=…;Model=…</c>.
    /// </summary>
    /// <param name="builder">The Ollama server, container or local.</param>
    /// <param name="name">The resource name, also the connection string name when referenced.</param>
    /// <param name="modelName">The Ollama model reference, e.g. <c>mistral:7b-instruct</c>.</param>
    public static IResourceBuilder<OllamaModelResource> AddModel<TServer>(this IResourceBuilder<TServer> builder, [ResourceName] string name, string modelName)
        where TServer : IOllamaServerResource
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(modelName);

        var model = new OllamaModelResource(name, modelName, builder.Resource);
        var app = builder.ApplicationBuilder;

        app.Services.TryAddSingleton(_ => new OllamaApiClient(new HttpClient(new SocketsHttpHandler())
        {
            // A pull streams for as long as the download takes; single calls are bounded by their callers' tokens.
            Timeout = Timeout.InfiniteTimeSpan,
        }));
        app.Services.TryAddSingleton<OllamaModelPuller>();

        var healthCheckKey = $"{name}_check";
        app.Services.AddHealthChecks().Add(new HealthCheckRegistration(
            healthCheckKey,
            services => new OllamaModelHealthCheck(model, services.GetRequiredService<OllamaApiClient>()),
            failureStatus: null,
            tags: null,
            timeout: ModelHealthCheckTimeout));

        app.Eventing.Subscribe<ResourceReadyEvent>(builder.Resource, (@event, cancellationToken) =>
        {
            var puller = @event.Services.GetRequiredService<OllamaModelPuller>();
            var stopping = @event.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
            _ = Task.Run(() => puller.EnsureModelAsync(model, stopping), stopping);
            return Task.CompletedTask;
        });

        return app.AddResource(model)
            .WithInitialState(new CustomResourceSnapshot
            {
                ResourceType = "OllamaModel",
                State = new(KnownResourceStates.Waiting, KnownResourceStateStyles.Info),
                Properties = [new("Model", modelName)],
            })
            .WithHealthCheck(healthCheckKey)
            .WithIconName("Brain")
            .WithCommand("pull-model", "Pull model", async context =>
                await context.Services.GetRequiredService<OllamaModelPuller>().EnsureModelAsync(model, context.CancellationToken).ConfigureAwait(false)
                    ? CommandResults.Success()
                    : CommandResults.Failure($"Could not pull {modelName}; the resource's console log says why."),
                new CommandOptions
                {
                    Description = $"Checks that {modelName} is on the server and pulls it if not.",
                    IconName = "ArrowDownload",
                    UpdateState = context => context.ResourceSnapshot.State?.Text is { } state
                        && (state == KnownResourceStates.Running || state == OllamaModelPuller.PullFailedState)
                            ? ResourceCommandState.Enabled
                            : ResourceCommandState.Disabled,
                });
    }

    /// <summary>
    /// Adds a resource that only says, in the dashboard and its console log, that no Ollama server could be started
    /// and why. It runs nothing and is left out of the manifest.
    /// </summary>
    /// <param name="builder">The application builder.</param>
    /// <param name="name">The name the Ollama server would have had.</param>
    /// <param name="reason">Why there is no server, for an operator.</param>
    public static IResourceBuilder<OllamaUnavailableResource> AddOllamaUnavailable(this IDistributedApplicationBuilder builder, [ResourceName] string name, string reason)
    {
        ArgumentNullException.ThrowIfNull(builder);

        return builder.AddResource(new OllamaUnavailableResource(name, reason))
            .WithInitialState(new CustomResourceSnapshot
            {
                ResourceType = "Ollama",
                State = new("Unavailable", KnownResourceStateStyles.Error),
                Properties = [new("Reason", reason)],
            })
            .WithIconName(IconName)
            .ExcludeFromManifest()
            .OnInitializeResource((resource, @event, _) =>
            {
                OllamaLog.Unavailable(@event.Logger, resource.Reason);
                return Task.CompletedTask;
            });
    }
}
