using Onyx.AppHost.Ollama;

namespace Onyx.AppHost.Infrastructure;

/// <summary>What the gateway is wired to: resources the AppHost runs, or plain settings in external mode.</summary>
internal sealed class OnyxInfrastructure
{
    /// <summary>Redis, referenced as <c>ConnectionStrings__redis</c> and waited for.</summary>
    public IResourceBuilder<IResourceWithConnectionString>? Redis { get; init; }

    /// <summary>The Ollama server, referenced through service discovery (<c>services__ollama__http__0</c>).</summary>
    public IResourceBuilder<IOllamaServerResource>? Ollama { get; init; }

    /// <summary>The fallback model, referenced as <c>ConnectionStrings__mistral</c> and waited for.</summary>
    public IResourceBuilder<OllamaModelResource>? Model { get; init; }

    /// <summary>Environment variables given to the gateway as they are (external mode).</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();
}
