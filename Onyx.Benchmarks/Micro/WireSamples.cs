using System.Text.Json;
using System.Text;
using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Routing;

namespace Onyx.Benchmarks.Micro;

/// <summary>
/// What the hot path sees on the wire: a typical client body, the two deployments of the shipped
/// <c>litellm-config.yaml</c>, and a 20-token answer as Together AI (OpenAI SSE) and Ollama (NDJSON) stream it.
/// </summary>
internal static class WireSamples
{
    /// <summary>The answer, token by token.</summary>
    public static readonly string[] Tokens =
    [
        "The", " capital", " of", " France", " is", " Paris", ".", " It", " lies", " on",
        " the", " Seine", " and", " is", " home", " to", " the", " Eiffel", " Tower", ".",
    ];

    /// <summary>OpenAI chunks the Together stream carries: role, one per token, finish, usage (<c>[DONE]</c> is not a chunk).</summary>
    public const int OpenAiChunkCount = 23;

    /// <summary>
    /// OpenAI chunks the gateway makes of the Ollama stream: one per token (the first also carries the role),
    /// finish, usage.
    /// </summary>
    public const int OllamaChunkCount = 22;

    /// <summary>A client's streaming request: a system and a user message, about 1 KB, as an OpenAI SDK sends it.</summary>
    public static readonly byte[] ClientBody = Encoding.UTF8.GetBytes("""
        {"model":"manus-primary","messages":[{"role":"system","content":"You are Manus, a careful research assistant working for an engineering team. Answer in plain English, in short paragraphs, and say so when you are not sure. Prefer primary sources: standards, official documentation and peer-reviewed papers over blog posts. When a question is ambiguous, state the reading you chose before answering it. Never invent citations, version numbers or API names; if you cannot verify one, say that it needs checking. Keep code samples minimal and compilable, and name the language and version they target."},{"role":"user","content":"We are choosing where to host a small internal service for our Paris office. Before we compare the providers, give me a short geography refresher: what is the capital of France, which river runs through it, and which landmark would a visitor most likely recognise first? One or two sentences are enough; we will ask follow-up questions about latency and data residency afterwards."}],"temperature":0.7,"max_tokens":512,"stream":true}
        """);

    /// <summary><see cref="ClientBody"/> asking for <paramref name="alias"/>, as the endpoint hands it to the router.</summary>
    public static ChatRequest ParseClientBody(string alias) =>
        ChatRequest.TryParse(JsonElement.Parse(Encoding.UTF8.GetString(ClientBody).Replace("\"model\":\"manus-primary\"", $"\"model\":\"{alias}\"", StringComparison.Ordinal)),
                out var request, out var error)
            ? request
            : throw new InvalidOperationException($"The sample client body is invalid: {error.Message}");

    public static Deployment Together { get; } = new()
    {
        Id = "together_ai/deepseek-ai/DeepSeek-V3",
        Alias = "manus-primary",
        Provider = ProviderCatalog.ByPrefix["together_ai"],
        ProviderModel = "deepseek-ai/DeepSeek-V3",
        ApiBase = new Uri("https://api.together.xyz/v1"),
        ApiKey = "tgp_v1_benchmark-key-not-a-real-one",
        DefaultMaxTokens = 4096,
        DefaultTemperature = 0.7,
    };

    public static Deployment Ollama { get; } = new()
    {
        Id = "ollama/mistral:7b-instruct",
        Alias = "manus-fallback",
        Provider = ProviderCatalog.ByPrefix["ollama"],
        ProviderModel = "mistral:7b-instruct",
        ApiBase = new Uri("http://ollama:11434"),
    };

    /// <summary>
    /// Together AI's stream for <see cref="Tokens"/>, in its own chunk shape (OpenAI's plus <c>text</c>, <c>seed</c>,
    /// <c>token_id</c>): a role chunk, one chunk per token, a finish chunk, a usage chunk and <c>[DONE]</c>.
    /// </summary>
    public static readonly byte[] TogetherSse = BuildTogetherSse();

    /// <summary>Ollama's <c>/api/chat</c> NDJSON stream for <see cref="Tokens"/>: one line per token, then the done line.</summary>
    public static readonly byte[] OllamaNdjson = BuildOllamaNdjson();

    /// <summary>One content chunk of <see cref="TogetherSse"/> (the " Paris" one), without its SSE framing.</summary>
    public static readonly byte[] OneTogetherContentChunk = Encoding.UTF8.GetBytes(TogetherChunk(6, " Paris", tokenId: 12366, finish: null));

    /// <summary>One content line of <see cref="OllamaNdjson"/> (the " Paris" one), as the provider reads it.</summary>
    public static readonly string OneOllamaContentLine = OllamaLine(" Paris", 6);

    private const string TogetherId = "nz7Qk2m-2kFHot-94a1f3c2b8e1d0a7";
    private const long Created = 1_767_225_600;

    private static string TogetherChunk(int index, string content, int tokenId, string? finish, bool role = false) =>
        $$$"""{"id":"{{{TogetherId}}}","object":"chat.completion.chunk","created":{{{Created + index / 10}}},"model":"deepseek-ai/DeepSeek-V3","system_fingerprint":null,"choices":[{"index":0,"text":"{{{content}}}","logprobs":null,"finish_reason":{{{(finish is null ? "null" : $"\"{finish}\"")}}},"seed":null,"delta":{"token_id":{{{tokenId}}},"role":"assistant","content":"{{{content}}}","tool_calls":null}}],"usage":null}""";

    private static byte[] BuildTogetherSse()
    {
        var sse = new StringBuilder();
        void Event(string data) => sse.Append("data: ").Append(data).Append("\n\n");

        Event($$$"""{"id":"{{{TogetherId}}}","object":"chat.completion.chunk","created":{{{Created}}},"model":"deepseek-ai/DeepSeek-V3","system_fingerprint":null,"choices":[{"index":0,"text":"","logprobs":null,"finish_reason":null,"seed":null,"delta":{"token_id":null,"role":"assistant","content":"","tool_calls":null}}],"usage":null}""");
        for (var i = 0; i < Tokens.Length; i++)
        {
            Event(TogetherChunk(i, Tokens[i], tokenId: 1000 + i * 37, finish: null));
        }
        Event(TogetherChunk(Tokens.Length, "", tokenId: 2, finish: "stop"));
        Event($$$"""{"id":"{{{TogetherId}}}","object":"chat.completion.chunk","created":{{{Created + 2}}},"model":"deepseek-ai/DeepSeek-V3","system_fingerprint":null,"choices":[],"usage":{"prompt_tokens":212,"completion_tokens":20,"total_tokens":232,"cached_tokens":0}}""");
        Event("[DONE]");
        return Encoding.UTF8.GetBytes(sse.ToString());
    }

    private static string OllamaLine(string content, int index) =>
        $$"""{"model":"mistral:7b-instruct","created_at":"2026-01-01T00:00:{{index:00}}.{{index * 1_234_567 % 1_000_000_000:000000000}}Z","message":{"role":"assistant","content":"{{content}}"},"done":false}""";

    private static byte[] BuildOllamaNdjson()
    {
        var ndjson = new StringBuilder();
        for (var i = 0; i < Tokens.Length; i++)
        {
            ndjson.Append(OllamaLine(Tokens[i], i)).Append('\n');
        }
        ndjson.Append("""{"model":"mistral:7b-instruct","created_at":"2026-01-01T00:00:21.000000000Z","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,"total_duration":2462000000,"load_duration":2000000,"prompt_eval_count":212,"prompt_eval_duration":212000000,"eval_count":20,"eval_duration":200000000}""").Append('\n');
        return Encoding.UTF8.GetBytes(ndjson.ToString());
    }
}
