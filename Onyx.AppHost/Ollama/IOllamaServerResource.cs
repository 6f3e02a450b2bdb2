namespace Onyx.AppHost.Ollama;

/// <summary>
/// An Ollama server, whichever way it runs (the <c>ollama/ollama</c> container or a local <c>ollama serve</c>),
/// so models can be pulled and checked the same way on both.
/// </summary>
internal interface IOllamaServerResource : IResourceWithConnectionString, IResourceWithEndpoints
{
    /// <summary>The name of the HTTP endpoint Ollama's API is served on.</summary>
    const string HttpEndpointName = "http";

    /// <summary>The HTTP endpoint of Ollama's API.</summary>
    EndpointReference PrimaryEndpoint { get; }
}
