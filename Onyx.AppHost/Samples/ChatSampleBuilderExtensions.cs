using Onyx.AppHost.Configuration;
using Onyx.AppHost.Gateway;

namespace Onyx.AppHost.Samples;

/// <summary>Adds the sample consumer (<c>samples/Onyx.Sample.Chat</c>) when <c>Onyx:Sample:Enabled</c> is true.</summary>
internal static class ChatSampleBuilderExtensions
{
    public const string SampleName = "chat-sample";

    /// <summary>
    /// The sample, wired to the gateway the way any project is: a reference to a consumer of the gateway, and a wait for
    /// it. Off by default: a plain <c>dotnet run</c> of the AppHost starts only the gateway and what it needs, and a
    /// referenced consumer makes a gateway without a master key refuse keyless callers (see <see cref="GatewayConsumerBuilderExtensions"/>).
    /// </summary>
    public static IResourceBuilder<ProjectResource>? AddChatSample(this IDistributedApplicationBuilder builder, IResourceBuilder<GatewayConsumerResource> consumer)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(consumer);
        if (!builder.Configuration.GetFlag(OnyxConfiguration.SampleEnabled))
        {
            return null;
        }

        // No launch profile: the AppHost picks the port, so two AppHosts (or tests) never fight over one.
        return builder.AddProject<Projects.Onyx_Sample_Chat>(SampleName, options => options.ExcludeLaunchProfile = true)
            .WithHttpEndpoint(name: "http")
            .WithHttpHealthCheck("/health")
            .WithReference(consumer)
            .WaitFor(consumer);
    }
}
