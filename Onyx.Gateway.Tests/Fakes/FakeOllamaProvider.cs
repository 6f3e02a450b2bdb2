using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Onyx.Gateway.Tests.Fakes;

/// <summary>
/// A fake Ollama server speaking the native API: <c>POST /api/chat</c> (NDJSON stream by default, or one JSON
/// object with <c>"stream": false</c>), <c>GET /api/tags</c>, <c>POST /api/show</c>, <c>GET /api/version</c> and
/// <c>GET /</c> ("Ollama is running"), on a real loopback port. <c>/api/chat</c> answers for any model name;
/// <c>/api/show</c> knows only <see cref="FakeLlmProvider.Models"/> (a name without a tag means <c>:latest</c>).
/// With <see cref="FakeBehavior.ToolCall"/> set, a request that offers <c>tools</c> is answered as Ollama answers a
/// tool call: the whole call in one line (the arguments, <see cref="FakeBehavior.Tokens"/> concatenated, as a JSON
/// object), empty content, and <c>done_reason: "stop"</c> all the same.
/// </summary>
public sealed class FakeOllamaProvider : FakeLlmProvider
{
    /// <summary>The model the fake lists when nothing else is configured.</summary>
    public const string DefaultModel = "llama3.2:1b";

    private const long LoadDurationNs = 2_000_000;
    private const long PromptEvalNsPerToken = 1_000_000;
    private const long EvalNsPerToken = 10_000_000;

    private FakeOllamaProvider(FakeBehavior defaults)
        : base(defaults)
    {
    }

    /// <summary><c>http://127.0.0.1:PORT</c>: what an Ollama client takes as its host.</summary>
    public override Uri BaseUrl => new(RootUrl.GetLeftPart(UriPartial.Authority));

    private protected override string ChatPath => "/api/chat";

    private protected override string StreamContentType => "application/x-ndjson";

    private protected override string InBandErrorJson => ErrorBody("upstream overloaded");

    /// <summary>
    /// Starts a fake on a free loopback port; <paramref name="defaults"/> is what <see cref="FakeLlmProvider.Reset"/>
    /// restores (by default it lists <see cref="DefaultModel"/>).
    /// </summary>
    public static Task<FakeOllamaProvider> StartAsync(FakeBehavior? defaults = null) =>
        StartAsync(new FakeOllamaProvider(defaults ?? new FakeBehavior { Models = [DefaultModel] }));

    /// <summary>An Ollama error body: <c>{"error":"…"}</c>.</summary>
    public static string ErrorBody(string message) => new JsonObject { ["error"] = message }.ToJsonString(WireJson);

    private protected override string ErrorJson(int statusCode, string message) => ErrorBody(message);

    private protected override bool IsStreaming(JsonNode body) =>
        body["stream"] is not JsonValue value || !value.TryGetValue<bool>(out var stream) || stream;

    private protected override void MapEndpoints(WebApplication app)
    {
        app.MapMethods("/", [HttpMethods.Get, HttpMethods.Head], () => TypedResults.Text("Ollama is running"));
        app.MapGet("/api/version", (HttpContext context) => WriteJsonAsync(context, StatusCodes.Status200OK, new JsonObject { ["version"] = "0.12.0" }));
        app.MapGet("/api/tags", (HttpContext context) =>
        {
            var models = new JsonArray();
            foreach (var model in Behavior.Models)
            {
                var name = Canonical(model);
                models.Add(new JsonObject
                {
                    ["name"] = name,
                    ["model"] = name,
                    ["modified_at"] = Timestamp(),
                    ["size"] = 1_321_098_329,
                    ["digest"] = Digest(name),
                    ["details"] = Details(),
                });
            }

            return WriteJsonAsync(context, StatusCodes.Status200OK, new JsonObject { ["models"] = models });
        });
        app.MapPost("/api/show", (HttpContext context) =>
        {
            var body = Recorded(context).Json;
            var requested = (body?["model"] ?? body?["name"]) is JsonValue value && value.TryGetValue<string>(out var name) ? name : "";
            if (!Behavior.Models.Any(model => Canonical(model) == Canonical(requested)))
            {
                return WriteJsonAsync(context, StatusCodes.Status404NotFound, new JsonObject { ["error"] = $"model '{requested}' not found" });
            }

            return WriteJsonAsync(context, StatusCodes.Status200OK, new JsonObject
            {
                ["modelfile"] = $"FROM {Canonical(requested)}\n",
                ["parameters"] = "stop \"<|eot_id|>\"",
                ["template"] = "{{ .Prompt }}",
                ["details"] = Details(),
                ["model_info"] = new JsonObject { ["general.architecture"] = "llama", ["general.parameter_count"] = 1_235_814_432 },
                ["capabilities"] = new JsonArray("completion"),
                ["modified_at"] = Timestamp(),
            });
        });
    }

    private protected override Task WriteAnswerAsync(FakeChatCall call)
    {
        var arguments = ToolCallArguments(call);
        if (IsStreaming(call.Body))
        {
            return arguments is null ? StreamAsync(call) : StreamToolCallAsync(call, arguments);
        }

        var answer = arguments is null ? Line(call, call.Text) : ToolCallLine(call, arguments);
        answer["done_reason"] = "stop";
        answer["done"] = true;
        AddCounts(call, answer);
        return WriteNonStreamingAsync(call, answer.ToJsonString(WireJson));
    }

    private async Task StreamAsync(FakeChatCall call)
    {
        Task Write(string json) => call.WriteAsync(json + "\n");

        await call.StartAsync(StreamContentType);

        if (call.Fault is FakeFault.ErrorFirstEventFault)
        {
            await Write(InBandErrorJson);
            return;
        }

        if (call.Fault is FakeFault.MalformedChunkFault)
        {
            await Write($$"""{"model":"{{call.Model}}","created_at":""");
        }

        var complete = await StreamTokensAsync(call, token => Write(Line(call, token).ToJsonString(WireJson)), () => Write(InBandErrorJson),
            () => Write($$"""{"model":"{{call.Model}}","created_at":"""));
        if (!complete || call.Fault is FakeFault.EndWithoutDoneFault)
        {
            return;
        }

        var done = Line(call, "");
        done["done_reason"] = "stop";
        done["done"] = true;
        AddCounts(call, done);
        await Write(done.ToJsonString(WireJson));
    }

    /// <summary>
    /// A tool call, as Ollama streams one: nothing while the model writes it (Ollama holds the tokens back until it
    /// has parsed the whole call), then the call in one line, then the done line — whose <c>done_reason</c> is
    /// "stop", as Ollama's is.
    /// </summary>
    private async Task StreamToolCallAsync(FakeChatCall call, JsonObject arguments)
    {
        Task Write(string json) => call.WriteAsync(json + "\n");

        await call.StartAsync(StreamContentType);

        if (call.Fault is FakeFault.ErrorFirstEventFault)
        {
            await Write(InBandErrorJson);
            return;
        }

        if (call.Fault is FakeFault.MalformedChunkFault)
        {
            await Write($$"""{"model":"{{call.Model}}","created_at":""");
        }

        var left = call.Tokens.Count;
        var complete = await StreamTokensAsync(call, _ => --left == 0 ? Write(ToolCallLine(call, arguments).ToJsonString(WireJson)) : Task.CompletedTask,
            () => Write(InBandErrorJson), () => Write($$"""{"model":"{{call.Model}}","created_at":"""));
        if (!complete || call.Fault is FakeFault.EndWithoutDoneFault)
        {
            return;
        }
        if (call.Tokens.Count == 0)
        {
            await Write(ToolCallLine(call, arguments).ToJsonString(WireJson));
        }

        var done = Line(call, "");
        done["done_reason"] = "stop";
        done["done"] = true;
        AddCounts(call, done);
        await Write(done.ToJsonString(WireJson));
    }

    /// <summary>
    /// The arguments of the tool call this call answers with, or null for a plain answer: a model cannot call a
    /// tool it was not offered, and Ollama passes text it cannot parse as a call on as content.
    /// </summary>
    private static JsonObject? ToolCallArguments(FakeChatCall call)
    {
        if (call.Behavior.ToolCall is null || call.Body["tools"] is not JsonArray { Count: > 0 })
        {
            return null;
        }
        try
        {
            return call.Text.Length == 0 ? new JsonObject() : JsonNode.Parse(call.Text) as JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>A line calling <see cref="FakeBehavior.ToolCall"/>: empty content and <c>tool_calls</c>, arguments an object.</summary>
    private static JsonObject ToolCallLine(FakeChatCall call, JsonObject arguments)
    {
        var line = Line(call, "");
        line["message"]!["tool_calls"] = new JsonArray(new JsonObject
        {
            ["function"] = new JsonObject { ["name"] = call.Behavior.ToolCall, ["arguments"] = arguments.DeepClone() },
        });
        return line;
    }

    /// <summary>A chat line: <c>{"model","created_at","message":{"role":"assistant","content"},"done":false}</c>.</summary>
    private static JsonObject Line(FakeChatCall call, string content) => new()
    {
        ["model"] = call.Model,
        ["created_at"] = Timestamp(),
        ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = content },
        ["done"] = false,
    };

    private static void AddCounts(FakeChatCall call, JsonObject line)
    {
        if (!call.ReportsUsage)
        {
            return;
        }

        long promptEval = call.Behavior.PromptTokens * PromptEvalNsPerToken;
        long eval = call.Tokens.Count * EvalNsPerToken;
        line["total_duration"] = LoadDurationNs + promptEval + eval;
        line["load_duration"] = LoadDurationNs;
        line["prompt_eval_count"] = call.Behavior.PromptTokens;
        line["prompt_eval_duration"] = promptEval;
        line["eval_count"] = call.Tokens.Count;
        line["eval_duration"] = eval;
    }

    private static JsonObject Details() => new()
    {
        ["parent_model"] = "",
        ["format"] = "gguf",
        ["family"] = "llama",
        ["families"] = new JsonArray("llama"),
        ["parameter_size"] = "1.2B",
        ["quantization_level"] = "Q8_0",
    };

    private static string Canonical(string model) => model.Contains(':', StringComparison.Ordinal) ? model : model + ":latest";

    private static string Digest(string model) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(model)));

    private static string Timestamp() => DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture);

    private static Task WriteJsonAsync(HttpContext context, int statusCode, JsonObject json)
    {
        context.Response.StatusCode = statusCode;
        context.Response.ContentType = "application/json; charset=utf-8";
        return context.Response.WriteAsync(json.ToJsonString(WireJson), context.RequestAborted);
    }
}
