using System.Text.Json;
using BenchmarkDotNet.Attributes;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;

namespace Onyx.Benchmarks.Micro;

/// <summary>
/// Ollama NDJSON → OpenAI SSE: the real <c>OllamaProvider.StreamAsync</c> reads each line, deserializes it and
/// builds an OpenAI chunk, which goes to the client through <c>SseWriter</c>. The stream benchmark reports per
/// chunk (22 chunks a stream: 20 tokens, the first with the role, then finish and usage); the other two split one
/// line's cost into its parts.
/// </summary>
/// <remarks>Not sealed: BenchmarkDotNet runs a generated subclass.</remarks>
[MemoryDiagnoser]
public class OllamaStreamBenchmarks
{
    private readonly CountingSink _client = new();
    private InMemoryUpstream _handler = null!;
    private UpstreamClients _clients = null!;
    private OllamaProvider _provider = null!;
    private ChatRequest _request = null!;

    [GlobalSetup]
    public void Setup()
    {
        _handler = new InMemoryUpstream(WireSamples.OllamaNdjson);
        _clients = InMemoryUpstream.ClientsFor(WireSamples.Ollama, _handler);
        _provider = new OllamaProvider(_clients, TimeProvider.System);
        _request = WireSamples.ParseClientBody();

        var context = new AttemptContext("check");
        StreamCheck.Expect("OllamaProvider.StreamAsync", WireSamples.OllamaChunkCount, string.Concat(WireSamples.Tokens), context,
            sink => ClientSse.WriteAsync(_provider.StreamAsync(WireSamples.Ollama, _request, context, CancellationToken.None), sink));
        if (_handler.LastRequestUri?.AbsoluteUri != "http://ollama:11434/api/chat")
        {
            throw new InvalidOperationException($"The provider called {_handler.LastRequestUri}.");
        }
        if (DeserializeOneLine() is not OllamaChatLine { Message.Content: " Paris", Done: false } || BuildOneChunk().Length == 0)
        {
            throw new InvalidOperationException("The sample Ollama line no longer reads as expected.");
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _clients.Dispose();

    /// <summary>
    /// The real <c>OllamaProvider.StreamAsync</c> (body translated, <see cref="HttpClient"/> send to an in-memory
    /// handler, NDJSON read line by line and translated) to <c>SseWriter</c>.
    /// </summary>
    [Benchmark(OperationsPerInvoke = WireSamples.OllamaChunkCount)]
    public Task TranslateThroughProviderPerChunk()
    {
        _client.Reset();
        var context = new AttemptContext("bench");
        return ClientSse.WriteAsync(_provider.StreamAsync(WireSamples.Ollama, _request, context, CancellationToken.None), _client);
    }

    /// <summary>Per line, part 1: <c>JsonSerializer.Deserialize(line, OllamaJsonContext.Default.OllamaChatLine)</c>.</summary>
    [Benchmark]
    public object? DeserializeOneLine() => JsonSerializer.Deserialize(WireSamples.OneOllamaContentLine, OllamaJsonContext.Default.OllamaChatLine);

    /// <summary>Per line, part 2: <c>ChatChunks.Build</c> for one content token.</summary>
    [Benchmark]
    public byte[] BuildOneChunk() =>
        ChatChunks.Build("chatcmpl-0af4c2d6b1e84f0f9b1f2f7d3c5a9e10", 1_767_225_600, "mistral:7b-instruct", null, " Paris", null, null);
}
