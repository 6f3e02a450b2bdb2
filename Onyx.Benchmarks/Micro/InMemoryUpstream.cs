using System.Collections.Concurrent;
using System.Net;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;
using Onyx.Gateway.Routing;

namespace Onyx.Benchmarks.Micro;

/// <summary>
/// An upstream that answers every request with the same bytes from memory, so a provider's real
/// <c>StreamAsync</c> runs end to end (body building, <see cref="HttpClient"/>, response reading, translation)
/// with no socket in the measurement.
/// </summary>
internal sealed class InMemoryUpstream(byte[] answer) : HttpMessageHandler
{
    public Uri? LastRequestUri { get; private set; }

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        LastRequestUri = request.RequestUri;
        return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(answer), RequestMessage = request });
    }

    /// <summary>
    /// <see cref="UpstreamClients"/> with <paramref name="handler"/> in place of the <see cref="SocketsHttpHandler"/>
    /// it would build for <paramref name="deployment"/>'s origin.
    /// </summary>
    /// <remarks>
    /// <see cref="UpstreamClients"/> has no seam for a handler, so this seeds its private per-origin client cache
    /// (<c>_clients</c>) through <see cref="UnsafeAccessorAttribute"/>; a renamed field fails here with
    /// <see cref="MissingFieldException"/>, never silently.
    /// </remarks>
    public static UpstreamClients ClientsFor(Deployment deployment, HttpMessageHandler handler)
    {
        var clients = new UpstreamClients(Options.Create(new OnyxOptions()));
        var client = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        if (!ClientCache(clients).TryAdd(deployment.ApiBase.GetLeftPart(UriPartial.Authority), client)
            || !ReferenceEquals(clients.For(deployment.ApiBase), client))
        {
            throw new InvalidOperationException("UpstreamClients no longer keys its clients by origin; update InMemoryUpstream.ClientsFor.");
        }
        return clients;
    }

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_clients")]
    private static extern ref ConcurrentDictionary<string, HttpClient> ClientCache(UpstreamClients clients);
}

/// <summary>The gateway's private helpers the benchmarks call directly, to split a per-chunk cost into its parts.</summary>
internal static class GatewayInternals
{
    /// <summary><c>OllamaProvider.Chunk</c>: builds one OpenAI chunk from a translated Ollama line.</summary>
    [UnsafeAccessor(UnsafeAccessorKind.StaticMethod, Name = "Chunk")]
    public static extern byte[] OllamaChunk(OllamaProvider? declaringType, string id, long created, string model, string? role,
        string? content, string? finishReason, TokenUsage? usage);
}
