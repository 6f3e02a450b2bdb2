namespace Onyx.AppHost.Ollama;

/// <summary>The Ollama server as a local <c>ollama serve</c> process, for machines without a container runtime.</summary>
/// <remarks>Its connection string is <c>Endpoint=http://host:port</c>, as for <see cref="OllamaResource"/>.</remarks>
internal sealed class OllamaExecutableResource(string name, string command, string workingDirectory)
    : ExecutableResource(name, command, workingDirectory), IOllamaServerResource
{
    private EndpointReference? _primaryEndpoint;

    public EndpointReference PrimaryEndpoint =>
        _primaryEndpoint ??= new(this, IOllamaServerResource.HttpEndpointName);

    public ReferenceExpression ConnectionStringExpression =>
        ReferenceExpression.Create($"Endpoint={PrimaryEndpoint.Property(EndpointProperty.Url)}");
}
