namespace Onyx.AppHost.Ollama;

/// <summary>
/// A model that must be present on an Ollama server. It is pulled once the server is ready and is healthy only
/// while the server really has it (<see cref="OllamaModelHealthCheck"/>).
/// </summary>
/// <remarks>Its connection string is <c>Endpoint=http://host:port;Model=name:tag</c>.</remarks>
internal sealed class OllamaModelResource(string name, string modelName, IOllamaServerResource parent)
    : Resource(name), IResourceWithParent<IOllamaServerResource>, IResourceWithConnectionString
{
    /// <summary>The Ollama model reference, e.g. <c>mistral:7b-instruct</c>.</summary>
    public string ModelName { get; } = modelName;

    public IOllamaServerResource Parent { get; } = parent;

    public ReferenceExpression ConnectionStringExpression =>
        ReferenceExpression.Create($"Endpoint={Parent.PrimaryEndpoint.Property(EndpointProperty.Url)};Model={ModelName}");
}
