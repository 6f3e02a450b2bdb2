using System.Text;
using BenchmarkDotNet.Attributes;
using Onyx.Gateway.OpenAi;

namespace Onyx.Benchmarks.Micro;

/// <summary>
/// OpenAI-compatible pass-through (Together AI, DeepSeek, vLLM…): each upstream SSE event is parsed, inspected and
/// written to the client unchanged. The stream benchmark reports per upstream chunk (23 a stream: role, 20 tokens,
/// finish, usage), with the request's routing, upstream call and <c>[DONE]</c> spread over them.
/// </summary>
/// <remarks>Not sealed: BenchmarkDotNet runs a generated subclass.</remarks>
[MemoryDiagnoser]
public class OpenAiStreamBenchmarks
{
    private readonly StringBuilder _completionText = new(256);
    private InMemoryUpstream _handler = null!;
    private ServedStream _served = null!;
    private ChatRequest _request = null!;

    [GlobalSetup]
    public void Setup()
    {
        _handler = new InMemoryUpstream(WireSamples.TogetherSse);
        _served = new ServedStream(_handler);
        _request = WireSamples.ParseClientBody(WireSamples.Together.Alias);

        // The stream must be the one a client expects, or the figures mean nothing. The usage chunk is the gateway's
        // own (the client did not ask for one), so the client gets the other 22.
        _served.Expect("manus-primary through OpenAiCompatibleProvider", _request, WireSamples.OpenAiChunkCount - 1, string.Concat(WireSamples.Tokens));
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
    public void Cleanup() => _served.Dispose();

    /// <summary>
    /// The gateway's streaming path (<see cref="ServedStream"/>): the router opens Together AI, the real
    /// <c>OpenAiCompatibleProvider.StreamAsync</c> builds the upstream body, sends it through <see cref="HttpClient"/> to
    /// an in-memory handler and reads the SSE events, and <c>ChatStreamResult</c> writes them to the client.
    /// </summary>
    [Benchmark(OperationsPerInvoke = WireSamples.OpenAiChunkCount)]
    public Task ThroughProviderPerChunk() => _served.ServeAsync(_request);

    /// <summary><see cref="ChunkInspector.Inspect"/> alone, on one content chunk, appending its text as the provider does.</summary>
    [Benchmark]
    public bool InspectOneChunk()
    {
        _completionText.Clear();
        return ChunkInspector.Inspect(WireSamples.OneTogetherContentChunk, _completionText).HasContent;
    }
}
