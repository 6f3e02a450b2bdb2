using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Onyx.Benchmarks.Upstream;

/// <summary>
/// A fast fake LLM provider for load runs: OpenAI SSE (<c>/v1/chat/completions</c>) and Ollama NDJSON
/// (<c>/api/chat</c>) — the same wire protocols as the tests' fakes, without their recording and fault
/// machinery. Every byte it sends is prepared once, so it costs the same whether the gateway or the load
/// generator calls it. <see cref="Pacing"/> sets the token count and the pause between tokens.
/// </summary>
internal sealed class FastUpstream : IAsyncDisposable
{
    public const string Model = "bench-model";

    private readonly WebApplication _app;

    private FastUpstream(WebApplication app, Uri root)
    {
        _app = app;
        Root = root;
    }

    public Uri Root { get; }

    /// <summary>Tokens per answer and the pause before each token after the first.</summary>
    public UpstreamPacing Pacing { get; set; } = new(20, TimeSpan.Zero);

    public static async Task<FastUpstream> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);
        var app = builder.Build();
        FastUpstream? self = null;
        app.MapPost("/v1/chat/completions", context => self!.OpenAiAsync(context));
        app.MapPost("/api/chat", context => self!.OllamaAsync(context));
        app.MapPost("/_bench/pacing", (int tokens, int delayMs) =>
        {
            self!.Pacing = new UpstreamPacing(tokens, TimeSpan.FromMilliseconds(delayMs));
            return Results.NoContent();
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        self = new FastUpstream(app, new Uri(address));
        return self;
    }

    private static async Task<(bool Stream, bool IncludeUsage)> ReadRequestAsync(HttpContext context)
    {
        using var document = await JsonDocument.ParseAsync(context.Request.Body);
        var root = document.RootElement;
        var stream = !root.TryGetProperty("stream", out var s) || s.ValueKind != JsonValueKind.False;
        if (!root.TryGetProperty("stream", out _) && context.Request.Path.StartsWithSegments("/v1"))
        {
            stream = false; // OpenAI's default is JSON; Ollama's is a stream.
        }
        var usage = root.TryGetProperty("stream_options", out var o) && o.TryGetProperty("include_usage", out var u) && u.ValueKind == JsonValueKind.True;
        return (stream, usage);
    }

    private async Task OpenAiAsync(HttpContext context)
    {
        var (stream, includeUsage) = await ReadRequestAsync(context);
        var pacing = Pacing;
        var answer = OpenAiAnswer.For(pacing.Tokens);
        if (!stream)
        {
            await Task.Delay(pacing.Delay * Math.Max(0, pacing.Tokens - 1), context.RequestAborted);
            context.Response.ContentType = "application/json";
            await context.Response.Body.WriteAsync(answer.Completion, context.RequestAborted);
            return;
        }
        context.Response.ContentType = "text/event-stream";
        var body = context.Response.Body;
        await body.WriteAsync(answer.RoleChunk, context.RequestAborted);
        await body.FlushAsync(context.RequestAborted);
        for (var i = 0; i < answer.TokenChunks.Length; i++)
        {
            if (i > 0 && pacing.Delay > TimeSpan.Zero)
            {
                await Task.Delay(pacing.Delay, context.RequestAborted);
            }
            await body.WriteAsync(answer.TokenChunks[i], context.RequestAborted);
            await body.FlushAsync(context.RequestAborted);
        }
        await body.WriteAsync(answer.FinishChunk, context.RequestAborted);
        if (includeUsage)
        {
            await body.WriteAsync(answer.UsageChunk, context.RequestAborted);
        }
        await body.WriteAsync(OpenAiAnswer.Done, context.RequestAborted);
    }

    private async Task OllamaAsync(HttpContext context)
    {
        var (stream, _) = await ReadRequestAsync(context);
        var pacing = Pacing;
        var answer = OllamaAnswer.For(pacing.Tokens);
        if (!stream)
        {
            context.Response.ContentType = "application/json";
            await context.Response.Body.WriteAsync(answer.Completion, context.RequestAborted);
            return;
        }
        context.Response.ContentType = "application/x-ndjson";
        var body = context.Response.Body;
        for (var i = 0; i < answer.TokenLines.Length; i++)
        {
            if (i > 0 && pacing.Delay > TimeSpan.Zero)
            {
                await Task.Delay(pacing.Delay, context.RequestAborted);
            }
            await body.WriteAsync(answer.TokenLines[i], context.RequestAborted);
            await body.FlushAsync(context.RequestAborted);
        }
        await body.WriteAsync(answer.DoneLine, context.RequestAborted);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

internal sealed record UpstreamPacing(int Tokens, TimeSpan Delay);

/// <summary>An OpenAI answer of N tokens, as the bytes a provider sends.</summary>
internal sealed class OpenAiAnswer
{
    public static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();
    private static readonly Dictionary<int, OpenAiAnswer> Cache = [];

    public required byte[] Completion { get; init; }
    public required byte[] RoleChunk { get; init; }
    public required byte[][] TokenChunks { get; init; }
    public required byte[] FinishChunk { get; init; }
    public required byte[] UsageChunk { get; init; }

    public static OpenAiAnswer For(int tokens)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(tokens, out var answer))
            {
                Cache[tokens] = answer = Build(tokens);
            }
            return answer;
        }
    }

    private static OpenAiAnswer Build(int tokens)
    {
        const string head = """{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1764140000,"model":"bench-model","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":""";
        var words = Enumerable.Range(0, tokens).Select(i => i == 0 ? "Hello" : $" word{i}").ToArray();
        byte[] Event(string json) => Encoding.UTF8.GetBytes("data: " + json + "\n\n");
        return new OpenAiAnswer
        {
            RoleChunk = Event(head + """{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}"""),
            TokenChunks = words.Select(w => Event(head + $$"""{"content":"{{w}}"},"logprobs":null,"finish_reason":null}],"usage":null}""")).ToArray(),
            FinishChunk = Event(head + """{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"""),
            UsageChunk = Event($$$"""{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1764140000,"model":"bench-model","choices":[],"usage":{"prompt_tokens":24,"completion_tokens":{{{tokens}}},"total_tokens":{{{24 + tokens}}}}}"""),
            Completion = Encoding.UTF8.GetBytes($$$"""{"id":"chatcmpl-bench","object":"chat.completion","created":1764140000,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"{{{string.Concat(words)}}}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":24,"completion_tokens":{{{tokens}}},"total_tokens":{{{24 + tokens}}}}}"""),
        };
    }
}

/// <summary>An Ollama answer of N tokens, as NDJSON lines.</summary>
internal sealed class OllamaAnswer
{
    private static readonly Dictionary<int, OllamaAnswer> Cache = [];

    public required byte[] Completion { get; init; }
    public required byte[][] TokenLines { get; init; }
    public required byte[] DoneLine { get; init; }

    public static OllamaAnswer For(int tokens)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(tokens, out var answer))
            {
                Cache[tokens] = answer = Build(tokens);
            }
            return answer;
        }
    }

    private static OllamaAnswer Build(int tokens)
    {
        var words = Enumerable.Range(0, tokens).Select(i => i == 0 ? "Hello" : $" word{i}").ToArray();
        byte[] Line(string json) => Encoding.UTF8.GetBytes(json + "\n");
        const string head = """{"model":"bench-model","created_at":"2026-11-26T08:00:00.000000Z","message":{"role":"assistant","content":""";
        return new OllamaAnswer
        {
            TokenLines = words.Select(w => Line(head + $$"""{{w}}"},"done":false}""")).ToArray(),
            DoneLine = Line(head + $$"""
                "},"done_reason":"stop","done":true,"total_duration":1000000,"load_duration":1000,"prompt_eval_count":24,"prompt_eval_duration":1000,"eval_count":{{tokens}},"eval_duration":100000}
                """.Trim()),
            Completion = Line(head + $$"""{{string.Concat(words)}}"},"done_reason":"stop","done":true,"prompt_eval_count":24,"eval_count":{{tokens}}}"""),
        };
    }
}
