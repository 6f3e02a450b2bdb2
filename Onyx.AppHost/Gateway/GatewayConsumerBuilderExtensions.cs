using Microsoft.Extensions.DependencyInjection;
using Onyx.AppHost.Configuration;
using Onyx.AppHost.Infrastructure;

namespace Onyx.AppHost.Gateway;

/// <summary>Adds consumers of the gateway: a key of their own and an OpenAI-shaped connection string each.</summary>
internal static class GatewayConsumerBuilderExtensions
{
    /// <summary>The consumer the AppHost always declares; projects read <c>ConnectionStrings:onyx</c>.</summary>
    public const string DefaultConsumerName = "onyx";

    /// <summary>The relationship type <c>WithReference</c> records (Aspire names no constant for it).</summary>
    private const string ReferenceRelationship = "Reference";

    /// <summary>
    /// Adds a consumer of <paramref name="gateway"/>: a secret parameter <c>{name}-key</c> (generated when not set) that the
    /// gateway accepts as a configured key of user <paramref name="name"/>, and a resource whose connection string is
    /// <c>Endpoint={gateway}/v1;Key={key}</c>. Reference it from a project (<c>.WithReference(consumer).WaitFor(consumer)</c>)
    /// and the project gets <c>ConnectionStrings__{name}</c>.
    /// </summary>
    /// <remarks>
    /// The key is minted here, not by <c>/key/generate</c>: a generated key needs a running gateway and Redis, and a
    /// published manifest has neither. A configured key is the next best thing: it is not the master key (it cannot
    /// create, change or read other keys, nor read the audit trail), it carries its own user for limits, spend and audit,
    /// and it lives only in the parameter store (user secrets, or the deployment's secret store).
    /// </remarks>
    public static IResourceBuilder<GatewayConsumerResource> AddConsumer(this IResourceBuilder<ProjectResource> gateway, [ResourceName] string name)
    {
        ArgumentNullException.ThrowIfNull(gateway);
        var builder = gateway.ApplicationBuilder;

        // Letters and digits only: the key is written into a connection string, where ';' and '=' are separators.
        var key = builder.AddParameter($"{name}-key", new GenerateParameterDefault { MinLength = 48, Special = false }, secret: true);
        var consumer = new GatewayConsumerResource(name, gateway.Resource, key.Resource);

        // The key reaches the gateway the way every secret does there: an environment variable the config refers to
        // (a config key may not hold the key itself). The entry is named, not numbered, so it cannot land on, and
        // merge into, a key the config file lists at some index.
        var keyVariable = "ONYX_CONSUMER_KEY_" + EnvironmentName(name).ToUpperInvariant();
        var entry = $"general_settings__keys__aspire_{EnvironmentName(name)}__";
        gateway.WithEnvironment(context =>
        {
            if (!IsDeclared(builder, consumer))
            {
                return;
            }
            context.EnvironmentVariables[keyVariable] = consumer.Key;
            context.EnvironmentVariables[entry + "key"] = "os.environ/" + keyVariable;
            context.EnvironmentVariables[entry + "user_id"] = consumer.UserId;
            context.EnvironmentVariables[entry + "key_alias"] = consumer.Name;
        });

        builder.LogOnStart(logger =>
        {
            if (IsDeclared(builder, consumer) && !HasMasterKey(builder))
            {
                GatewayConsumerLog.ConsumerClosesOpenGateway(logger, consumer.Name, key.Resource.Name);
            }
        });

        // Ready when the gateway is: a project waiting for the consumer waits for the gateway to answer.
        builder.Eventing.Subscribe<ResourceReadyEvent>(gateway.Resource, (@event, _) =>
            @event.Services.GetRequiredService<ResourceNotificationService>()
                .PublishUpdateAsync(consumer, state => state with { State = KnownResourceStates.Running }));

        return builder.AddResource(consumer)
            .WithInitialState(new CustomResourceSnapshot
            {
                ResourceType = "OnyxConsumer",
                State = new(KnownResourceStates.Waiting, KnownResourceStateStyles.Info),
                Properties = [new("User", consumer.UserId)],
            })
            .WithIconName("PlugConnected");
    }

    /// <summary>
    /// Whether the gateway is told the consumer's key. Always, except when run without a master key and no resource
    /// references the consumer: the gateway then serves loopback callers without any key (the AppHost's quick start),
    /// and a key nobody uses would end that for nothing.
    /// </summary>
    internal static bool IsDeclared(IDistributedApplicationBuilder builder, GatewayConsumerResource consumer) =>
        !builder.ExecutionContext.IsRunMode || HasMasterKey(builder) || IsReferenced(builder.Resources, consumer);

    private static bool HasMasterKey(IDistributedApplicationBuilder builder) =>
        builder.Configuration.GetNonEmpty(OnyxConfiguration.MasterKeyParameter) is not null;

    /// <summary>Whether some resource has a <c>WithReference</c> to the consumer (Aspire records it as a "Reference" relationship).</summary>
    private static bool IsReferenced(IResourceCollection resources, GatewayConsumerResource consumer) =>
        resources.Any(resource => resource.TryGetAnnotationsOfType<ResourceRelationshipAnnotation>(out var relationships)
            && relationships.Any(r => r.Type == ReferenceRelationship && ReferenceEquals(r.Resource, consumer)));

    private static string EnvironmentName(string name) =>
        string.Concat(name.Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_'));
}
