using System.Net;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Model;
using Onyx.Gateway.Providers;

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
    public static UpstreamClients ClientsFor(Deployment deployment, HttpMessageHandler handler)
    {
        var clients = new UpstreamClients(Options.Create(new OnyxOptions())) { CreateHandler = () => handler };
        _ = clients.For(deployment);
        return clients;
    }
}
