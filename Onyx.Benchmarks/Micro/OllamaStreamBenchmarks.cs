using System.Text.Json;
using BenchmarkDotNet.Attributes;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;

namespace Onyx.Benchmarks.Micro;

/// <summary>
/// Ollama NDJSON → OpenAI SSE: the real <c>OllamaProvider.StreamAsync</c> reads each line, deserializes it and
/// builds an OpenAI chunk, which the gateway's <c>ChatStreamResult</c> writes to the client. The stream benchmark
/// reports per chunk (22 chunks a stream: 20 tokens, the first with the role, then finish and usage), with the
/// request's routing, upstream call and <c>[DONE]</c> spread over them; the other two split one line's cost into its parts.
/// </summary>
/// <remarks>Not sealed: BenchmarkDotNet runs a generated subclass.</remarks>
[MemoryDiagnoser]
public class OllamaStreamBenchmarks
{
    private InMemoryUpstream _handler = null!;
    private ServedStream _served = null!;
    private ChatRequest _request = null!;

    [GlobalSetup]
    public void Setup()
    {
        _handler = new InMemoryUpstream(WireSamples.OllamaNdjson);
        _served = new ServedStream(_handler);
        _request = WireSamples.ParseClientBody(WireSamples.Ollama.Alias);

        // The usage chunk is the gateway's own (the client did not ask for one), so the client gets the other 21.
        _served.Expect("manus-fallback through OllamaProvider", _request, WireSamples.OllamaChunkCount - 1, string.Concat(WireSamples.Tokens));
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
    public void Cleanup() => _served.Dispose();

    /// <summary>
    /// The gateway's streaming path (<see cref="ServedStream"/>): the router opens Ollama, the real
    /// <c>OllamaProvider.StreamAsync</c> translates the body, sends it through <see cref="HttpClient"/> to an in-memory
    /// handler and reads and translates the NDJSON line by line, and <c>ChatStreamResult</c> writes the chunks to the client.
    /// </summary>
    [Benchmark(OperationsPerInvoke = WireSamples.OllamaChunkCount)]
    public Task TranslateThroughProviderPerChunk() => _served.ServeAsync(_request);

    /// <summary>Per line, part 1: <c>JsonSerializer.Deserialize(line, OllamaJsonContext.Default.OllamaChatLine)</c>.</summary>
    [Benchmark]
    public object? DeserializeOneLine() => JsonSerializer.Deserialize(WireSamples.OneOllamaContentLine, OllamaJsonContext.Default.OllamaChatLine);

    /// <summary>Per line, part 2: <c>ChatChunks.Build</c> for one content token.</summary>
    [Benchmark]
    public byte[] BuildOneChunk() =>
        ChatChunks.Build("chatcmpl-0af4c2d6b1e84f0f9b1f2f7d3c5a9e10", 1_767_225_600, "mistral:7b-instruct", null, " Paris", null, null);
}
