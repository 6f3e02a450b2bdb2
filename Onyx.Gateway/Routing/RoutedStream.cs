using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;
using Onyx.Gateway.Resilience;
using Onyx.Gateway.Telemetry;

namespace Onyx.Gateway.Routing;

/// <summary>What a stream attempt produced up to its first token; the rest is still upstream.</summary>
internal sealed class StreamHead(IAsyncEnumerator<StreamChunk> rest, List<StreamChunk> head, bool ended)
{
    public IAsyncEnumerator<StreamChunk> Rest { get; } = rest;

    public List<StreamChunk> Head { get; } = head;

    public bool Ended { get; } = ended;

    public CancellationTokenSource? Timer { get; private set; }

    public CancellationTokenSource? Linked { get; private set; }

    public void Adopt(CancellationTokenSource timer, CancellationTokenSource linked)
    {
        Timer = timer;
        Linked = linked;
    }
}

/// <summary>
/// A stream that has started on one deployment. Yields the chunks to forward, in order; a failure after the
/// first token surfaces as an <see cref="UpstreamException"/> (the caller ends the client's stream with an error
/// event, never a pretend-complete answer). Disposing writes the call log record.
/// </summary>
internal sealed class RoutedStream : IAsyncDisposable
{
    private readonly StreamHead _start;
    private readonly AttemptContext _context;
    private readonly CallTracker _call;
    private readonly CircuitBreaker _breaker;
    private readonly TimeSpan _idleTimeout;
    private readonly TimeProvider _time;
    private readonly GatewayMetrics _metrics;
    private TokenUsage? _usage;
    private bool _usageForwarded;
    private bool _completed;
    private UpstreamException? _failure;

    public RoutedStream(RouteInfo route, StreamHead start, AttemptContext context, CallTracker call, CircuitBreaker breaker,
        TimeSpan idleTimeout, TimeProvider time, GatewayMetrics metrics)
    {
        Route = route;
        _start = start;
        _context = context;
        _call = call;
        _breaker = breaker;
        _idleTimeout = idleTimeout;
        _time = time;
        _metrics = metrics;
        metrics.StreamStarted();
    }

    public RouteInfo Route { get; }

    public async IAsyncEnumerable<ReadOnlyMemory<byte>> ReadAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        foreach (var chunk in _start.Head)
        {
            if (Forward(chunk))
            {
                yield return chunk.Json;
            }
        }
        if (!_start.Ended)
        {
            var timer = _start.Timer!;
            while (true)
            {
                timer.CancelAfter(_idleTimeout);
                bool more;
                try
                {
                    more = await _start.Rest.MoveNextAsync();
                }
                catch (OperationCanceledException) when (timer.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    throw Fail(new UpstreamException(FailureKind.Stalled,
                        $"{Route.Deployment.Id} sent nothing for {_idleTimeout.TotalSeconds:0.###}s in the middle of the answer"));
                }
                catch (UpstreamException ex)
                {
                    throw Fail(ex);
                }
                if (!more)
                {
                    break;
                }
                var chunk = _start.Rest.Current;
                if (Forward(chunk))
                {
                    yield return chunk.Json;
                }
            }
        }
        if (_call.Request.IncludeUsage && !_usageForwarded)
        {
            yield return UsageChunk(_usage ?? _call.Estimate(_context));
        }
        _completed = true;
        // Logged (and its tokens counted) before the client sees [DONE], so its next request sees this one's tokens.
        _call.Succeeded(Route, _usage, _context);
    }

    /// <summary>Notes usage; drops the usage-only chunk the gateway asked for on its own behalf.</summary>
    private bool Forward(StreamChunk chunk)
    {
        if (chunk.Info.Usage is { } usage)
        {
            _usage = usage;
        }
        if (chunk.Info.ChoicesEmpty && chunk.Info.Usage is not null)
        {
            _usageForwarded |= _call.Request.IncludeUsage;
            return _call.Request.IncludeUsage;
        }
        return true;
    }

    private UpstreamException Fail(UpstreamException failure)
    {
        _failure = failure;
        _breaker.OnFailure(default, failure.Reason);
        _call.AttemptFailed(Route.Deployment, failure);
        return failure;
    }

    private byte[] UsageChunk(TokenUsage usage)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("id", "chatcmpl-" + Route.RequestId);
            json.WriteString("object", "chat.completion.chunk");
            json.WriteNumber("created", _time.GetUtcNow().ToUnixTimeSeconds());
            json.WriteString("model", _context.ResponseModel ?? Route.Deployment.ProviderModel);
            json.WriteStartArray("choices");
            json.WriteEndArray();
            json.WriteStartObject("usage");
            json.WriteNumber("prompt_tokens", usage.Prompt);
            json.WriteNumber("completion_tokens", usage.Completion);
            json.WriteNumber("total_tokens", usage.Total);
            json.WriteEndObject();
            json.WriteEndObject();
        }
        _usageForwarded = true;
        return buffer.WrittenSpan.ToArray();
    }

    public async ValueTask DisposeAsync()
    {
        _metrics.StreamEnded();
        await _start.Rest.DisposeAsync();
        _start.Linked?.Dispose();
        _start.Timer?.Dispose();
        if (_completed)
        {
            _call.Succeeded(Route, _usage, _context);
        }
        else if (_failure is not null)
        {
            _call.Failed(Route.Deployment, Route.Fallback, StatusCodes.Status502BadGateway, OpenAiErrorTypes.Upstream, _failure.Message, _usage, _context);
        }
        else
        {
            _call.Failed(Route.Deployment, Route.Fallback, StatusCodes.Status499ClientClosedRequest, "client_closed_request",
                "The client closed the connection mid-stream.", _usage, _context);
        }
    }
}
