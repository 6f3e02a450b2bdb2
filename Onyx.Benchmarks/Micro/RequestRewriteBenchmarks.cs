using System.Text;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;

namespace Onyx.Benchmarks.Micro;

/// <summary>
/// Per request, before any byte goes upstream: the client's body is parsed and checked
/// (<c>ChatCompletionsApi.ReadRequestAsync</c>), then rewritten for the deployment's protocol.
/// </summary>
/// <remarks>Not sealed: BenchmarkDotNet runs a generated subclass.</remarks>
[MemoryDiagnoser]
public class RequestRewriteBenchmarks
{
    /// <summary>As the endpoint parses it.</summary>
    private static readonly JsonDocumentOptions ParseOptions = new() { MaxDepth = 64, AllowDuplicateProperties = false };

    private readonly MemoryStream _body = new(WireSamples.ClientBody, writable: false);

    [GlobalSetup]
    public void CheckTheSamples()
    {
        var together = Encoding.UTF8.GetString(RewriteForTogether());
        var ollama = Encoding.UTF8.GetString(RewriteForOllama());
        if (ParseAndValidate() is not ChatRequest { Stream: true } parsed || parsed.Messages.GetArrayLength() != 2
            || !together.Contains("\"model\":\"deepseek-ai/DeepSeek-V3\"", StringComparison.Ordinal)
            || !together.Contains("\"stream_options\":{\"include_usage\":true}", StringComparison.Ordinal)
            || !ollama.Contains("\"model\":\"mistral:7b-instruct\",\"stream\":true", StringComparison.Ordinal)
            || !ollama.Contains("\"num_predict\":512", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"The sample request no longer parses or rewrites as expected:\n{together}\n{ollama}");
        }
    }

    /// <summary>Parse of the ~1 KB body from the request stream into a <c>JsonElement</c> of its own, then <c>ChatRequest.TryParse</c>.</summary>
    [Benchmark(Baseline = true)]
    public object ParseAndValidate() => Parse();

    /// <summary>Parse, validate, and build the Together AI (OpenAI-compatible) upstream body.</summary>
    [Benchmark]
    public byte[] RewriteForTogether() => OpenAiCompatibleProvider.BuildBody(WireSamples.Together, Parse(), stream: true);

    /// <summary>Parse, validate, and translate to an Ollama <c>/api/chat</c> body.</summary>
    [Benchmark]
    public byte[] RewriteForOllama() => OllamaProvider.BuildBody(WireSamples.Ollama, Parse(), stream: true);

    private ChatRequest Parse()
    {
        _body.Position = 0;
        using var document = JsonDocument.Parse(_body, ParseOptions);
        return ChatRequest.TryParse(document.RootElement.Clone(), out var request, out var error)
            ? request
            : throw new InvalidOperationException(error.Message);
    }
}
