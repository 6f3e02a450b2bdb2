using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Api;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;
using Onyx.Gateway.Resilience;
using Onyx.Gateway.Routing;
using Onyx.Gateway.Telemetry;

namespace Onyx.Benchmarks.Micro;

/// <summary>
/// A streamed chat served by the gateway's own code from the router down: <see cref="ChatCompletionRouter.StreamAsync"/>
/// opens the deployment (breaker, slot, the provider's upstream request, its first token) and the endpoint's
/// <see cref="ChatStreamResult"/> writes each chunk of the <see cref="RoutedStream"/> as an SSE event, flushing whenever
/// the upstream has nothing more ready. The services are registered by the gateway's own extension methods from the
/// shipped <c>litellm-config.yaml</c>; only the upstream answers from memory (<see cref="InMemoryUpstream"/>), and the
/// response discards what it is given. Left out: the endpoint's request parsing, keys and rate limits (measured apart or
/// per request, not per chunk), and the call's observers (call log, metrics, audit), which run once a call.
/// </summary>
internal sealed class ServedStream : IDisposable
{
    private const string RequestId = "bench";

    private readonly IHost _host;
    private readonly ChatCompletionRouter _router;
    private readonly DefaultHttpContext _discarding = ResponseInto(Stream.Null);

    public ServedStream(HttpMessageHandler upstream)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            [Onyx.Gateway.Configuration.ConfigurationExtensions.ConfigPathKey] = Path.Combine(AppContext.BaseDirectory, "litellm-config.yaml"),
            ["TOGETHER_API_KEY"] = WireSamples.Together.ApiKey,
        });
        builder.Services.AddLogging();
        builder.Services.AddMetrics();
        builder.Services.AddSingleton(TimeProvider.System);
        // The breakers report their transitions to it.
        builder.Services.AddSingleton<GatewayMetrics>();
        builder.AddGatewayConfiguration();
        builder.AddRoutingTable();
        builder.AddProviders();
        builder.AddGatewayResilience();
        builder.AddModelRouting();
        builder.Services.AddSingleton(services =>
            new UpstreamClients(services.GetRequiredService<IOptions<OnyxOptions>>(), tracesExported: false) { CreateHandler = () => upstream });
        _host = builder.Build();
        _host.Services.GetRequiredService<IStartupValidator>().Validate();
        _router = _host.Services.GetRequiredService<ChatCompletionRouter>();
    }

    /// <summary>Serves <paramref name="request"/> to a response that keeps nothing.</summary>
    public Task ServeAsync(ChatRequest request)
    {
        // One context for every request, as Kestrel reuses a connection's.
        _discarding.Response.Headers.Clear();
        return ServeAsync(request, _discarding);
    }

    /// <summary>Serves <paramref name="request"/> once and returns the response body a client would read.</summary>
    public string Read(ChatRequest request)
    {
        using var body = new MemoryStream();
        ServeAsync(request, ResponseInto(body)).GetAwaiter().GetResult();
        return Encoding.UTF8.GetString(body.ToArray());
    }

    /// <summary>
    /// Runs a stream once, before measuring, and fails the benchmark unless the client gets <paramref name="events"/>
    /// chunks whose content is <paramref name="answer"/>, then <c>[DONE]</c>.
    /// </summary>
    public void Expect(string what, ChatRequest request, int events, string answer)
    {
        var sse = Read(request);
        var data = sse.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        var problem =
            data.Length != events + 1 ? $"{data.Length} events, expected {events} chunks and [DONE]"
            : !data.All(e => e.StartsWith("data: {", StringComparison.Ordinal) || e == "data: [DONE]") ? "an event is not a data: line"
            : data[^1] != "data: [DONE]" ? "the stream does not end with [DONE]"
            : Content(data[..^1]) is var content && content != answer ? $"the answer is '{content}'"
            : null;
        if (problem is not null)
        {
            throw new InvalidOperationException($"{what}: {problem}.\n{sse}");
        }
    }

    public void Dispose() => _host.Dispose();

    private async Task ServeAsync(ChatRequest request, HttpContext context)
    {
        var stream = await _router.StreamAsync(request, RequestId, CallOwner.Unknown, context.RequestAborted);
        await new ChatStreamResult(stream).ExecuteAsync(context);
    }

    private static DefaultHttpContext ResponseInto(Stream body)
    {
        var context = new DefaultHttpContext();
        context.Features.Set<IHttpResponseBodyFeature>(new StreamResponseBodyFeature(body));
        return context;
    }

    private static string Content(IEnumerable<string> events) => string.Concat(events.Select(e =>
    {
        using var chunk = JsonDocument.Parse(e["data: ".Length..]);
        return chunk.RootElement.GetProperty("choices") is { ValueKind: JsonValueKind.Array } choices && choices.GetArrayLength() > 0
            && choices[0].TryGetProperty("delta", out var delta) && delta.TryGetProperty("content", out var text)
            ? text.GetString()
            : null;
    }));
}
