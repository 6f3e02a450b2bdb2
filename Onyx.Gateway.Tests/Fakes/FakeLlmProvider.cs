using System.Collections.Concurrent;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Onyx.Gateway.Tests.Fakes;

/// <summary>
/// The part every fake LLM provider shares: a real Kestrel server on a loopback port (so a gateway in another
/// process can reach it), the behaviour and fault queue, the request log and the counters tests await.
/// The protocol (OpenAI, Ollama) lives in the derived classes.
/// </summary>
public abstract class FakeLlmProvider : IAsyncDisposable
{
    private const string RecordKey = "Onyx.Fakes.RecordedRequest";

    private protected static readonly JsonSerializerOptions WireJson = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private readonly Lock _gate = new();
    private readonly List<RecordedRequest> _requests = [];
    private readonly List<RecordedRequest> _allRequests = [];
    private readonly ConcurrentQueue<FakeFault> _nextFaults = new();
    private readonly FakeCounter _calls = new("chat calls");
    private readonly FakeCounter _cancelled = new("cancelled chat calls");
    private readonly CancellationTokenSource _stopping = new();
    private FakeBehavior _behavior;
    private WebApplication? _app;
    private Uri? _rootUrl;
    private int _generation;
    private int _disposed;

    private protected FakeLlmProvider(FakeBehavior defaults)
    {
        Defaults = defaults;
        _behavior = defaults;
    }

    /// <summary><c>http://127.0.0.1:PORT/</c>: the server root.</summary>
    public Uri RootUrl => _rootUrl ?? throw new InvalidOperationException("The fake provider is not started.");

    /// <summary>The URL a client is configured with (OpenAI: <c>http://127.0.0.1:PORT/v1</c>; Ollama: the root).</summary>
    public abstract Uri BaseUrl { get; }

    /// <summary>The full URL of the chat endpoint (<c>…/v1/chat/completions</c>, <c>…/api/chat</c>).</summary>
    public Uri ChatUrl => new(RootUrl, ChatPath);

    /// <summary>The behaviour <see cref="Reset"/> restores (the one given to <c>StartAsync</c>).</summary>
    public FakeBehavior Defaults { get; }

    /// <summary>The current behaviour; setting it replaces everything at once.</summary>
    public FakeBehavior Behavior
    {
        get => Volatile.Read(ref _behavior);
        set => Volatile.Write(ref _behavior, value ?? throw new ArgumentNullException(nameof(value)));
    }

    public IReadOnlyList<string> Tokens
    {
        get => Behavior.Tokens;
        set => Update(b => b with { Tokens = value });
    }

    public int PromptTokens
    {
        get => Behavior.PromptTokens;
        set => Update(b => b with { PromptTokens = value });
    }

    public string? ResponseModel
    {
        get => Behavior.ResponseModel;
        set => Update(b => b with { ResponseModel = value });
    }

    public TimeSpan TokenDelay
    {
        get => Behavior.TokenDelay;
        set => Update(b => b with { TokenDelay = value });
    }

    /// <summary>The fault every chat call gets once the <see cref="FailNext"/> queue is empty.</summary>
    public FakeFault Fault
    {
        get => Behavior.Fault;
        set => Update(b => b with { Fault = value });
    }

    public string? RequiredApiKey
    {
        get => Behavior.RequiredApiKey;
        set => Update(b => b with { RequiredApiKey = value });
    }

    public IReadOnlyList<string> Models
    {
        get => Behavior.Models;
        set => Update(b => b with { Models = value });
    }

    /// <summary>The answer text a client should see: the configured tokens concatenated.</summary>
    public string ExpectedText => Behavior.Text;

    /// <summary>Requests that reached the chat endpoint.</summary>
    public int Calls => _calls.Value;

    /// <summary>Chat calls whose client went away (RequestAborted fired) before the fake finished answering.</summary>
    public int Cancelled => _cancelled.Value;

    /// <summary>The chat requests, in arrival order.</summary>
    public IReadOnlyList<RecordedRequest> Requests
    {
        get
        {
            lock (_gate)
            {
                return [.. _requests];
            }
        }
    }

    /// <summary>Every request (chat and discovery endpoints), in arrival order.</summary>
    public IReadOnlyList<RecordedRequest> AllRequests
    {
        get
        {
            lock (_gate)
            {
                return [.. _allRequests];
            }
        }
    }

    /// <summary>The last chat request, or <see langword="null"/>.</summary>
    public RecordedRequest? LastRequest
    {
        get
        {
            lock (_gate)
            {
                return _requests.Count > 0 ? _requests[^1] : null;
            }
        }
    }

    /// <summary>Replaces the behaviour atomically with <paramref name="change"/> applied to the current one.</summary>
    public void Update(Func<FakeBehavior, FakeBehavior> change)
    {
        ArgumentNullException.ThrowIfNull(change);
        lock (_gate)
        {
            Behavior = change(Behavior);
        }
    }

    /// <summary>The next <paramref name="count"/> chat calls get <paramref name="fault"/>; later ones get <see cref="Fault"/> again.</summary>
    public void FailNext(int count, FakeFault fault)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentNullException.ThrowIfNull(fault);
        for (var i = 0; i < count; i++)
        {
            _nextFaults.Enqueue(fault);
        }
    }

    /// <summary>Completes once <see cref="Calls"/> reaches <paramref name="count"/>; throws <see cref="TimeoutException"/> after <paramref name="timeout"/>.</summary>
    public Task WaitForCallsAsync(int count, TimeSpan timeout) => _calls.WaitAsync(count, timeout);

    /// <summary>Completes once <see cref="Cancelled"/> reaches <paramref name="count"/>; throws <see cref="TimeoutException"/> after <paramref name="timeout"/>.</summary>
    public Task WaitForCancelledAsync(int count, TimeSpan timeout) => _cancelled.WaitAsync(count, timeout);

    /// <summary>
    /// Restores <see cref="Defaults"/>, empties the fault queue and the request log, and zeroes the counters.
    /// Calls still in flight from before the reset no longer count as cancelled.
    /// </summary>
    public void Reset()
    {
        lock (_gate)
        {
            _generation++;
            Behavior = Defaults;
            _nextFaults.Clear();
            _requests.Clear();
            _allRequests.Clear();
            _calls.Reset();
            _cancelled.Reset();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        _stopping.Dispose();
        GC.SuppressFinalize(this);
    }

    private protected static async Task<T> StartAsync<T>(T fake)
        where T : FakeLlmProvider
    {
        try
        {
            await fake.StartServerAsync();
            return fake;
        }
        catch
        {
            await fake.DisposeAsync();
            throw;
        }
    }

    /// <summary>The chat endpoint path (<c>/v1/chat/completions</c>, <c>/api/chat</c>).</summary>
    private protected abstract string ChatPath { get; }

    /// <summary>The content type of a streamed answer.</summary>
    private protected abstract string StreamContentType { get; }

    /// <summary>The in-band error object of <see cref="FakeFault.ErrorFirstEvent"/> and <see cref="FakeFault.ErrorLineAfter"/>.</summary>
    private protected abstract string InBandErrorJson { get; }

    /// <summary>The protocol's error body for an HTTP error status.</summary>
    private protected abstract string ErrorJson(int statusCode, string message);

    private protected abstract bool IsStreaming(JsonNode body);

    /// <summary>Maps the discovery endpoints (the chat endpoint is mapped by the base class).</summary>
    private protected abstract void MapEndpoints(WebApplication app);

    /// <summary>Writes the answer: every fault except the status and hang faults, which the base class handles.</summary>
    private protected abstract Task WriteAnswerAsync(FakeChatCall call);

    /// <summary>
    /// Streams the tokens through <paramref name="writeToken"/>, applying the token faults and pacing.
    /// Returns false when a fault ended the stream early (the caller writes nothing more).
    /// </summary>
    private protected static async Task<bool> StreamTokensAsync(FakeChatCall call, Func<string, Task> writeToken, Func<Task> writeError, Func<Task> writeMalformed)
    {
        var tokens = call.Tokens;
        for (var i = 0; i <= tokens.Count; i++)
        {
            switch (call.Fault)
            {
                case FakeFault.MalformedAfterFault malformed when malformed.Tokens == i:
                    await writeMalformed();
                    break;
                case FakeFault.DropAfterFault drop when drop.Tokens == i:
                    await call.CutConnectionAsync();
                    return false;
                case FakeFault.StallAfterFault stall when stall.Tokens == i:
                    await call.HangAsync();
                    return false;
                case FakeFault.ErrorLineAfterFault error when error.Tokens == i:
                    await writeError();
                    return false;
            }

            if (i == tokens.Count)
            {
                break;
            }

            if (i == 0 && call.Fault is FakeFault.SlowFirstTokenFault slow)
            {
                await call.DelayAsync(slow.Delay);
            }
            else if (i > 0)
            {
                await call.DelayAsync(call.Behavior.TokenDelay);
            }

            await writeToken(tokens[i]);
        }

        return true;
    }

    /// <summary>Writes a non-streamed JSON answer, applying the faults that make sense for a single body.</summary>
    private protected async Task WriteNonStreamingAsync(FakeChatCall call, string json)
    {
        if (call.Fault is FakeFault.SlowFirstTokenFault slow)
        {
            await call.DelayAsync(slow.Delay);
        }

        var tokenCount = call.Tokens.Count;
        if (tokenCount > 1)
        {
            await call.DelayAsync(call.Behavior.TokenDelay * (tokenCount - 1));
        }

        var half = json[..(json.Length / 2)];
        switch (call.Fault)
        {
            case FakeFault.DropAfterFault:
                call.Response.ContentLength = Encoding.UTF8.GetByteCount(json);
                await call.StartAsync("application/json");
                await call.WriteAsync(half);
                await call.CutConnectionAsync();
                break;
            case FakeFault.StallAfterFault:
                await call.StartAsync("application/json");
                await call.WriteAsync(half);
                await call.HangAsync();
                break;
            case FakeFault.MalformedChunkFault:
                await call.StartAsync("application/json");
                await call.WriteAsync(half);
                break;
            case FakeFault.ErrorFirstEventFault or FakeFault.ErrorLineAfterFault:
                await call.StartAsync("application/json");
                await call.WriteAsync(InBandErrorJson);
                break;
            default:
                await call.StartAsync("application/json");
                await call.WriteAsync(json);
                break;
        }
    }

    /// <summary>The request as the fake recorded it (body already read).</summary>
    private protected static RecordedRequest Recorded(HttpContext context) => (RecordedRequest)context.Items[RecordKey]!;

    private async Task StartServerAsync()
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ApplicationName = GetType().Name,
            ContentRootPath = AppContext.BaseDirectory,
            EnvironmentName = Environments.Production,
        });

        // Nothing from the test directory (appsettings.json, ASPNETCORE_* variables) may move the fake.
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;

            // One request per connection at a time, as upstream LLM clients use them; a cut drops exactly one answer.
            kestrel.ConfigureEndpointDefaults(endpoint => endpoint.Protocols = HttpProtocols.Http1);
        });

        // The transport's output pipe pauses at 2 bytes and resumes at 0, so a flush completes only once the socket
        // has taken the bytes: "flushed" means "on the wire", and DropAfter cuts after every earlier token left.
        builder.WebHost.UseSockets(sockets => sockets.MaxWriteBufferSize = 2);
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = TimeSpan.FromSeconds(2));

        var app = builder.Build();
        app.Use(RecordAsync);
        app.MapPost(ChatPath, HandleChatAsync);
        MapEndpoints(app);
        _app = app;

        await app.StartAsync(_stopping.Token);

        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single();
        _rootUrl = new Uri(address.TrimEnd('/') + "/");
    }

    private async Task RecordAsync(HttpContext context, RequestDelegate next)
    {
        string body;
        using (var reader = new StreamReader(context.Request.Body, Encoding.UTF8))
        {
            body = await reader.ReadToEndAsync(context.RequestAborted);
        }

        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, values) in context.Request.Headers)
        {
            headers[name] = values.ToString();
        }

        var request = new RecordedRequest(context.Request.Method, context.Request.Path.Value ?? "/", context.Request.QueryString.Value ?? "", headers, body);
        context.Items[RecordKey] = request;
        lock (_gate)
        {
            _allRequests.Add(request);
        }

        await next(context);
    }

    private async Task HandleChatAsync(HttpContext context)
    {
        var request = Recorded(context);
        int generation;
        lock (_gate)
        {
            _requests.Add(request);
            generation = _generation;
        }

        _calls.Increment();

        var aborted = context.RequestAborted;
        using var stopping = _stopping.Token.Register(context.Abort);
        var behavior = Behavior;
        var fault = _nextFaults.TryDequeue(out var next) ? next : behavior.Fault;
        var call = new FakeChatCall(context, request.Json ?? new JsonObject(), behavior, fault, AnswerTokens(behavior, request.Json));
        var finished = false;
        try
        {
            await AnswerAsync(call, request);
            finished = true;
        }
        catch (Exception) when (aborted.IsCancellationRequested)
        {
            // The client (or the fake itself) went away; nothing more can be sent.
        }
        finally
        {
            if (!finished && !call.SelfAborted && aborted.IsCancellationRequested && !_stopping.IsCancellationRequested)
            {
                lock (_gate)
                {
                    if (generation == _generation)
                    {
                        _cancelled.Increment();
                    }
                }
            }
        }
    }

    private async Task AnswerAsync(FakeChatCall call, RecordedRequest request)
    {
        if (request.Json is not JsonObject)
        {
            await WriteErrorAsync(call.Response, StatusCodes.Status400BadRequest, ErrorJson(StatusCodes.Status400BadRequest, "We could not parse the JSON body of your request."));
            return;
        }

        if (call.Behavior.RequiredApiKey is { } key && request.Authorization != $"Bearer {key}")
        {
            await WriteErrorAsync(call.Response, StatusCodes.Status401Unauthorized, ErrorJson(StatusCodes.Status401Unauthorized, "Incorrect API key provided."));
            return;
        }

        if (call.Behavior.Continuation == FakeContinuation.RefusesPrefill && Prefill(request.Json) is not null)
        {
            await WriteErrorAsync(call.Response, StatusCodes.Status400BadRequest, ErrorJson(StatusCodes.Status400BadRequest, "The last message must be from the user."));
            return;
        }

        switch (call.Fault)
        {
            case FakeFault.StatusFault status:
                foreach (var (name, value) in status.Headers)
                {
                    call.Response.Headers[name] = value;
                }

                await WriteErrorAsync(call.Response, status.StatusCode, status.Body ?? ErrorJson(status.StatusCode, DefaultMessage(status.StatusCode)));
                break;
            case FakeFault.HangBeforeHeadersFault:
                await call.HangAsync();
                break;
            case FakeFault.HeadersThenHangFault:
                await call.StartAsync(IsStreaming(call.Body) ? StreamContentType : "application/json");
                await call.HangAsync();
                break;
            default:
                await WriteAnswerAsync(call);
                break;
        }
    }

    /// <summary>The content of a trailing assistant message (a prefill), or null.</summary>
    private static string? Prefill(JsonNode? body) =>
        body?["messages"] is JsonArray { Count: > 0 } messages && messages[^1] is JsonObject last && (string?)last["role"] == "assistant"
            ? last["content"] is JsonValue content && content.TryGetValue<string>(out var text) ? text : ""
            : null;

    /// <summary>
    /// The tokens a call answers with. A model that honours a prefill which its own answer begins with goes on from
    /// exactly there (the token the prefill ends inside is split); every other case is the whole answer.
    /// </summary>
    private static IReadOnlyList<string> AnswerTokens(FakeBehavior behavior, JsonNode? body)
    {
        if (behavior.Continuation != FakeContinuation.Honours || Prefill(body) is not { } prefill || !behavior.Text.StartsWith(prefill, StringComparison.Ordinal))
        {
            return behavior.Tokens;
        }
        var rest = new List<string>();
        var at = 0;
        foreach (var token in behavior.Tokens)
        {
            var end = at + token.Length;
            if (end > prefill.Length)
            {
                rest.Add(at >= prefill.Length ? token : token[(prefill.Length - at)..]);
            }
            at = end;
        }
        return rest;
    }

    private static async Task WriteErrorAsync(HttpResponse response, int statusCode, string body)
    {
        response.StatusCode = statusCode;
        if (string.IsNullOrEmpty(response.ContentType))
        {
            response.ContentType = body.TrimStart().StartsWith('<') ? "text/html; charset=utf-8" : "application/json";
        }

        await response.WriteAsync(body, response.HttpContext.RequestAborted);
    }

    private static string DefaultMessage(int statusCode) => statusCode switch
    {
        StatusCodes.Status400BadRequest => "Invalid request.",
        StatusCodes.Status401Unauthorized => "Incorrect API key provided.",
        StatusCodes.Status404NotFound => "The model does not exist.",
        StatusCodes.Status429TooManyRequests => "Rate limit reached for requests.",
        StatusCodes.Status503ServiceUnavailable => "The server is overloaded or not ready yet.",
        _ => "The server had an error while processing your request.",
    };
}
