namespace Onyx.AppHost.Ollama;

/// <summary>The Ollama server as a container (<see cref="OllamaContainerImageTags"/>).</summary>
/// <remarks>Its connection string is <c>Endpoint=http://host:port</c>.</remarks>
internal sealed class OllamaResource(string name) : ContainerResource(name), IOllamaServerResource
{
    /// <summary>The port Ollama listens on inside the container.</summary>
    internal const int DefaultTargetPort = 11434;

    /// <summary>Where the image keeps pulled models.</summary>
    internal const string DataPath = "/root/.ollama";

    private EndpointReference? _primaryEndpoint;

    public EndpointReference PrimaryEndpoint =>
        _primaryEndpoint ??= new(this, IOllamaServerResource.HttpEndpointName);

    public ReferenceExpression ConnectionStringExpression =>
        ReferenceExpression.Create($"Endpoint={PrimaryEndpoint.Property(EndpointProperty.Url)}");
}
