using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Model;

namespace Onyx.Gateway.Providers;

/// <summary>
/// One long-lived <see cref="HttpClient"/> per upstream origin, on a <see cref="SocketsHttpHandler"/> with a
/// connect timeout and pooled connections, and no total timeout: a stream may legitimately last minutes, so
/// attempts are bounded by the router's first-token and idle limits instead (as YARP's forwarder does).
/// These clients are deliberately not from IHttpClientFactory, so the service defaults' standard resilience
/// handler (10 s/30 s timeouts, retries) never wraps LLM traffic.
/// </summary>
/// <param name="tracesExported">
/// Whether a trace exporter runs (the service defaults' <c>TracesExported</c>). Without one,
/// the handler gets no trace-context propagator, which takes .NET's diagnostics handler out of its pipeline: no
/// Activity and no <c>traceparent</c> header per upstream call that no one would ever see.
/// </param>
internal sealed class UpstreamClients(IOptions<OnyxOptions> options, bool tracesExported = true) : IDisposable
{
    private readonly ConcurrentDictionary<string, HttpClient> _clients = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Builds the handler of each origin's client; a seam for benchmarks that answer from memory.</summary>
    internal Func<HttpMessageHandler>? CreateHandler { get; init; }

    public HttpClient For(Deployment deployment) => _clients.GetOrAdd(deployment.Origin, _ => Create());

    /// <summary>
    /// Sends and returns once the response headers are in; a transport failure or an error status becomes an
    /// <see cref="UpstreamException"/>. The caller owns the returned response.
    /// </summary>
    public async Task<HttpResponseMessage> SendAsync(Deployment deployment, HttpRequestMessage message, CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            response = await For(deployment).SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            throw UpstreamErrors.Transport(ex, deployment);
        }
        if (!response.IsSuccessStatusCode)
        {
            using (response)
            {
                throw await UpstreamErrors.FromResponseAsync(response, deployment, cancellationToken);
            }
        }
        return response;
    }

    /// <summary>
    /// The largest non-streamed answer read from an upstream (16 MiB). A chat answer is text of at most some tens of
    /// thousands of tokens, a few hundred KB even with log-probabilities; without a bound, one upstream sending an
    /// endless body would hold the gateway's memory (HttpClient's own bound, 2 GB, applies only to the buffering it does
    /// itself, and upstream calls read their answers after the headers).
    /// </summary>
    public const int MaxAnswerBytes = 16 * 1024 * 1024;

    /// <summary>
    /// Reads a non-streamed answer whole, up to <paramref name="maxBytes"/>. A longer one is a malformed answer (the next
    /// deployment is tried) and is not read further; a connection that ends early is a broken one.
    /// </summary>
    public static async Task<byte[]> ReadAnswerAsync(HttpResponseMessage response, Deployment deployment, CancellationToken cancellationToken,
        int maxBytes = MaxAnswerBytes)
    {
        try
        {
            await response.Content.LoadIntoBufferAsync(maxBytes, cancellationToken);
            return await response.Content.ReadAsByteArrayAsync(cancellationToken);
        }
        catch (HttpRequestException ex) when (ex.HttpRequestError == HttpRequestError.ConfigurationLimitExceeded)
        {
            throw TooLarge(deployment, maxBytes, ex);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            throw UpstreamErrors.Broken(ex, deployment);
        }
    }

    private static UpstreamException TooLarge(Deployment deployment, int maxBytes, Exception ex) =>
        UpstreamErrors.Malformed(deployment, $"the answer is larger than {maxBytes / (1024 * 1024.0):0.###} MiB", ex);

    private HttpClient Create() => new(CreateHandler?.Invoke() ?? new SocketsHttpHandler
    {
        ConnectTimeout = options.Value.Routing.ConnectTimeout,
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
        // Re-resolve DNS now and then: provider endpoints move.
        PooledConnectionLifetime = TimeSpan.FromMinutes(10),
        AutomaticDecompression = DecompressionMethods.None,
        EnableMultipleHttp2Connections = true,
        MaxConnectionsPerServer = int.MaxValue,
        UseCookies = false,
        AllowAutoRedirect = false,
        ActivityHeadersPropagator = tracesExported ? DistributedContextPropagator.Current : null,
    })
    {
        Timeout = Timeout.InfiniteTimeSpan,
        DefaultRequestVersion = HttpVersion.Version11,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionOrHigher,
    };

    public void Dispose()
    {
        foreach (var client in _clients.Values)
        {
            client.Dispose();
        }
    }
}
