namespace Onyx.AppHost.Gateway;

/// <summary>
/// A consumer of the gateway: its own API key and a connection string in the shape Aspire's OpenAI client
/// integrations read, so <c>WithReference(consumer)</c> hands a project everything it needs to call the gateway.
/// </summary>
/// <remarks>
/// Its connection string is <c>Endpoint=http://host:port/v1;Key=…</c>: the endpoint includes <c>/v1</c>, as the OpenAI
/// SDK and Aspire's <c>OpenAIResource</c> take it (<c>https://api.openai.com/v1</c>). The key is the consumer's own
/// (the secret parameter <see cref="Key"/>), never the master key: the gateway knows it as a configured key of user
/// <see cref="UserId"/>, which may call models but not the admin endpoints.
/// </remarks>
internal sealed class GatewayConsumerResource(string name, ProjectResource gateway, ParameterResource key)
    : Resource(name), IResourceWithParent<ProjectResource>, IResourceWithConnectionString
{
    /// <summary>The gateway's endpoint the connection string names.</summary>
    public const string EndpointName = "http";

    private EndpointReference? _endpoint;

    /// <summary>The gateway project.</summary>
    public ProjectResource Parent { get; } = gateway;

    /// <summary>The consumer's API key, a secret parameter.</summary>
    public ParameterResource Key { get; } = key;

    /// <summary>The user the gateway counts this consumer's requests, limits and spend under: the resource's name.</summary>
    public string UserId => Name;

    public EndpointReference Endpoint => _endpoint ??= new(Parent, EndpointName);

    /// <summary>The OpenAI base URL: the gateway's endpoint and <c>/v1</c>.</summary>
    public ReferenceExpression UriExpression => ReferenceExpression.Create($"{Endpoint.Property(EndpointProperty.Url)}/v1");

    public ReferenceExpression ConnectionStringExpression =>
        ReferenceExpression.Create($"Endpoint={Endpoint.Property(EndpointProperty.Url)}/v1;Key={Key}");

    /// <summary>The parts also handed over one by one (<c>ONYX_ENDPOINT</c>, <c>ONYX_URI</c>, <c>ONYX_KEY</c>), as Aspire's OpenAI resource does.</summary>
    public IEnumerable<KeyValuePair<string, ReferenceExpression>> GetConnectionProperties() =>
    [
        new("Endpoint", UriExpression),
        new("Uri", UriExpression),
        new("Key", ReferenceExpression.Create($"{Key}")),
    ];
}
