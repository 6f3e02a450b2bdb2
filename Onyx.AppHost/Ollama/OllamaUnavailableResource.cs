namespace Onyx.AppHost.Ollama;

/// <summary>
/// Stands in the dashboard for an Ollama server that could not be started here, so an operator sees why the
/// fallback deployment is missing instead of a resource that silently is not there.
/// </summary>
internal sealed class OllamaUnavailableResource(string name, string reason) : Resource(name)
{
    public string Reason { get; } = reason;
}
