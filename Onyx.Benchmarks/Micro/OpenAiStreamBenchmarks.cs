using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text;
using BenchmarkDotNet.Attributes;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;

namespace Onyx.Benchmarks.Micro;

/// <summary>
/// OpenAI-compatible pass-through (Together AI, DeepSeek, vLLM…): each upstream SSE event is parsed, inspected and
/// written to the client unchanged. The stream benchmarks report per chunk (23 chunks a stream: role, 20 tokens,
/// finish, usage), with the stream's own setup and <c>[DONE]</c> spread over them.
/// </summary>
/// <remarks>Not sealed: BenchmarkDotNet runs a generated subclass.</remarks>
[MemoryDiagnoser]
public class OpenAiStreamBenchmarks
{
    private readonly MemoryStream _upstream = new(WireSamples.TogetherSse, writable: false);
    private readonly CountingSink _client = new();
    private readonly StringBuilder _completionText = new(256);
    private InMemoryUpstream _handler = null!;
    private UpstreamClients _clients = null!;
    private OpenAiCompatibleProvider _provider = null!;
    private ChatRequest _request = null!;

    [GlobalSetup]
    public void Setup()
    {
        _handler = new InMemoryUpstream(WireSamples.TogetherSse);
        _clients = InMemoryUpstream.ClientsFor(WireSamples.Together, _handler);
        _provider = new OpenAiCompatibleProvider(_clients);
        _request = WireSamples.ParseClientBody();

        // Both paths must produce the stream a client expects, or the figures mean nothing.
        var answer = string.Concat(WireSamples.Tokens);
        var context = new AttemptContext("check");
        StreamCheck.Expect("SSE pass-through", WireSamples.OpenAiChunkCount, answer, context,
            sink => ClientSse.WriteAsync(Forward(ResetUpstream(), context.CompletionText), sink));
        context = new AttemptContext("check");
        StreamCheck.Expect("OpenAiCompatibleProvider.StreamAsync", WireSamples.OpenAiChunkCount, answer, context,
            sink => ClientSse.WriteAsync(_provider.StreamAsync(WireSamples.Together, _request, context, CancellationToken.None), sink));
        if (_handler.LastRequestUri?.AbsoluteUri != "https://api.together.xyz/v1/chat/completions")
        {
            throw new InvalidOperationException($"The provider called {_handler.LastRequestUri}.");
        }
        if (!InspectOneChunk())
        {
            throw new InvalidOperationException("The sample content chunk has no content.");
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _clients.Dispose();

    /// <summary>
    /// <see cref="SseParser"/> over the upstream body (one <c>byte[]</c> per event), <see cref="ChunkInspector"/>,
    /// and <c>SseWriter</c> to the client, as <c>OpenAiCompatibleProvider.StreamAsync</c> and
    /// <c>ChatStreamResult</c> do it, without the HTTP request.
    /// </summary>
    [Benchmark(OperationsPerInvoke = WireSamples.OpenAiChunkCount)]
    public Task PassThroughPerChunk()
    {
        _client.Reset();
        // A new context per stream, as the router makes one per attempt: its CompletionText grows with the answer.
        var context = new AttemptContext("bench");
        return ClientSse.WriteAsync(Forward(ResetUpstream(), context.CompletionText), _client);
    }

    /// <summary>
    /// The real <c>OpenAiCompatibleProvider.StreamAsync</c> (upstream body built, <see cref="HttpClient"/> send to an
    /// in-memory handler, response read) to <c>SseWriter</c>: the per-request HTTP cost spread over the chunks.
    /// </summary>
    [Benchmark(OperationsPerInvoke = WireSamples.OpenAiChunkCount)]
    public Task ThroughProviderPerChunk()
    {
        _client.Reset();
        var context = new AttemptContext("bench");
        return ClientSse.WriteAsync(_provider.StreamAsync(WireSamples.Together, _request, context, CancellationToken.None), _client);
    }

    /// <summary><see cref="ChunkInspector.Inspect"/> alone, on one content chunk, appending its text as the provider does.</summary>
    [Benchmark]
    public bool InspectOneChunk()
    {
        _completionText.Clear();
        return ChunkInspector.Inspect(WireSamples.OneTogetherContentChunk, _completionText).HasContent;
    }

    private MemoryStream ResetUpstream()
    {
        _upstream.Position = 0;
        return _upstream;
    }

    /// <summary>The loop of <c>OpenAiCompatibleProvider.StreamAsync</c> over an already-open body.</summary>
    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> Forward(Stream body, StringBuilder completionText,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var parser = SseParser.Create(body, static (_, data) => data.ToArray());
        await foreach (var item in parser.EnumerateAsync(cancellationToken))
        {
            var data = item.Data;
            if (data.AsSpan().SequenceEqual("[DONE]"u8))
            {
                yield break;
            }
            if (data.Length == 0)
            {
                continue;
            }
            var info = ChunkInspector.Inspect(data, completionText);
            if (info.IsError)
            {
                throw new InvalidOperationException("The sample stream carries an error event.");
            }
            yield return data;
        }
    }
}
