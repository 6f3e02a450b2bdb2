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

    /// <summary>The deployment's slot (max_parallel_requests), held until the stream ends.</summary>
    public IDisposable? Slot { get; private set; }

    public void Adopt(CancellationTokenSource timer, CancellationTokenSource linked, IDisposable? slot = null)
    {
        Timer = timer;
        Linked = linked;
        Slot = slot;
    }
}

/// <summary>A continuation of a broken answer: its route, its first token, and how much of its text the client already had.</summary>
internal sealed record ResumedStream(RouteInfo Route, StreamHead Head, AttemptContext Context, int SkippedChars);

/// <summary>Asks the next deployments to continue an answer that broke after <c>partial</c> was sent.</summary>
internal delegate Task<ResumedStream> StreamContinuation(string partial, Deployment failed, CancellationToken clientAborted);

/// <summary>Where an answer broke and which deployment took it over.</summary>
internal sealed record ResumeInfo(string From, string To, int AtChars, string Reason);

/// <summary>
/// A stream that has started on one deployment. Yields the chunks to forward, in order. When the upstream breaks
/// or stalls mid-answer, the answer is continued on the next deployment of the chain (unless the alias turned
/// that off or a tool call is in flight), so the client receives one answer; when no deployment can continue it,
/// the failure surfaces as an <see cref="UpstreamException"/> and the caller ends the client's stream with an
/// error event — never a pretend-complete answer. An answer is complete once its finish reason and usage have
/// arrived, whatever the upstream's socket does next. Disposing writes the call log record.
/// </summary>
internal sealed class RoutedStream : IAsyncDisposable
{
    private readonly CallTracker _call;
    private readonly CircuitBreakerRegistry _breakers;
    private readonly TimeSpan _idleTimeout;
    private readonly TimeProvider _time;
    private readonly GatewayMetrics _metrics;
    private readonly StreamContinuation? _continue;
    private readonly List<ResumeInfo> _resumes = [];
    private StreamHead _current;
    private AttemptContext _context;
    private string _sentBefore = string.Empty;
    private int _skippedChars;
    private TokenUsage _prior;
    private TokenUsage? _usage;
    private bool _usageForwarded;
    private bool _finished;
    private bool _toolCall;
    private bool _roleSent;
    private bool _completed;
    private UpstreamException? _failure;

    public RoutedStream(RouteInfo route, StreamHead start, AttemptContext context, CallTracker call, CircuitBreakerRegistry breakers,
        TimeSpan idleTimeout, TimeProvider time, GatewayMetrics metrics, StreamContinuation? continuation)
    {
        Route = route;
        _current = start;
        _context = context;
        _call = call;
        _breakers = breakers;
        _idleTimeout = idleTimeout;
        _time = time;
        _metrics = metrics;
        _continue = continuation;
        metrics.StreamStarted();
    }

    /// <summary>The deployment serving the answer now (the last one, after a resume).</summary>
    public RouteInfo Route { get; private set; }

    /// <summary>Each point where the answer broke and was continued elsewhere.</summary>
    public IReadOnlyList<ResumeInfo> Resumes => _resumes;

    public async IAsyncEnumerable<ReadOnlyMemory<byte>> ReadAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        while (true)
        {
            foreach (var chunk in _current.Head)
            {
                if (Forward(chunk, out var json))
                {
                    yield return json;
                }
            }
            UpstreamException? failure = null;
            if (!_current.Ended && !Complete)
            {
                var timer = _current.Timer!;
                // From here the idle limit is the watch's: the timer's own deadline (set when the first token came)
                // is lifted, and only the waits for the upstream count.
                using var idle = new StreamIdleWatch(timer, _time, _idleTimeout);
                timer.CancelAfter(Timeout.InfiniteTimeSpan);
                while (true)
                {
                    bool more;
                    try
                    {
                        idle.Waiting();
                        more = await _current.Rest.MoveNextAsync();
                        idle.Received();
                    }
                    catch (OperationCanceledException) when (timer.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                    {
                        failure = new UpstreamException(FailureKind.Stalled,
                            $"{Route.Deployment.Id} sent nothing for {_idleTimeout.TotalSeconds:0.###}s in the middle of the answer");
                        break;
                    }
                    catch (UpstreamException ex)
                    {
                        failure = ex;
                        break;
                    }
                    if (!more)
                    {
                        break;
                    }
                    if (Forward(_current.Rest.Current, out var json))
                    {
                        yield return json;
                    }
                    if (Complete)
                    {
                        // Finish reason and usage are in: the answer is whole, [DONE] or socket close adds nothing.
                        break;
                    }
                }
            }
            if (failure is null || _finished)
            {
                break;
            }

            _breakers.For(Route.Deployment).OnFailure(default, failure.Reason);
            _call.AttemptFailed(Route.Deployment, failure, _context);
            if (_continue is null || _toolCall)
            {
                throw Fail(failure, _toolCall ? "a tool call was in flight, so the answer cannot be continued" : null);
            }
            var partial = _sentBefore + _context.CompletionText.ToString(_skippedChars, _context.CompletionText.Length - _skippedChars);
            ResumedStream resumed;
            try
            {
                resumed = await _continue(partial, Route.Deployment, cancellationToken);
            }
            catch (UpstreamException ex)
            {
                throw Fail(failure, ex.Message);
            }
            _prior = Add(_prior, _usage ?? _call.Estimate(_context));
            _resumes.Add(new ResumeInfo(Route.Deployment.Id, resumed.Route.Deployment.Id, partial.Length, failure.Reason));
            _call.Resumed(Route.Deployment, resumed.Route.Deployment, partial, resumed.SkippedChars, failure.Reason);
            await DisposeAttemptAsync(_current);
            (Route, _current, _context, _skippedChars, _sentBefore, _usage) = (resumed.Route, resumed.Head, resumed.Context, resumed.SkippedChars, partial, null);
            _roleSent = true;
        }
        var usage = Total();
        if (_call.Request.IncludeUsage && !_usageForwarded)
        {
            yield return UsageChunk(usage);
        }
        _completed = true;
        // Logged (and its tokens counted) before the client sees [DONE], so its next request sees this one's tokens.
        _call.Succeeded(Route, usage, _context);
    }

    private bool Complete => _finished && _usage is not null;

    /// <summary>Notes finish, usage and tool calls; drops or trims what the client must not see twice.</summary>
    private bool Forward(StreamChunk chunk, out ReadOnlyMemory<byte> json)
    {
        var info = chunk.Info;
        json = chunk.Json;
        if (chunk.Json.IsEmpty)
        {
            return false;
        }
        _finished |= info.HasFinishReason;
        _toolCall |= info.HasToolCall;
        if (info.Usage is { } usage)
        {
            _usage = usage;
        }
        if (info.ChoicesEmpty && info.Usage is not null)
        {
            // The usage chunk the gateway asked for on its own behalf goes to the client only if it asked, and
            // after a resume only as the total of every attempt, at the end.
            var pass = _call.Request.IncludeUsage && _resumes.Count == 0;
            _usageForwarded |= pass;
            return pass;
        }
        if (_roleSent && _resumes.Count > 0 && chunk.Json.Span.IndexOf("\"role\""u8) >= 0)
        {
            // A continuation opens with the assistant's role again; the client has had it. (Rare path: a re-parse.)
            if (!info.HasContent && !info.HasFinishReason)
            {
                return false;
            }
            json = WithoutRole(chunk.Json);
        }
        return true;
    }

    private static byte[] WithoutRole(ReadOnlyMemory<byte> chunk)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(chunk.Span)!;
        if (node["choices"] is System.Text.Json.Nodes.JsonArray choices)
        {
            foreach (var choice in choices)
            {
                (choice?["delta"] as System.Text.Json.Nodes.JsonObject)?.Remove("role");
            }
        }
        return System.Text.Encoding.UTF8.GetBytes(node.ToJsonString());
    }

    /// <summary>The whole answer's tokens: every cut attempt (estimated) and the last one.</summary>
    private TokenUsage Total()
    {
        var last = _usage ?? _call.Estimate(_context);
        return _resumes.Count == 0 ? last : Add(_prior, last);
    }

    private static TokenUsage Add(TokenUsage a, TokenUsage b) => new(a.Prompt + b.Prompt, a.Completion + b.Completion, a.Estimated || b.Estimated);

    private UpstreamException Fail(UpstreamException failure, string? why)
    {
        _failure = why is null ? failure : new UpstreamException(failure.Kind, $"{failure.Message}; {why}", failure.StatusCode);
        return _failure;
    }

    private byte[] UsageChunk(TokenUsage usage)
    {
        var bytes = ChatChunks.Build("chatcmpl-" + Route.RequestId, _time.GetUtcNow().ToUnixTimeSeconds(),
            _context.ResponseModel ?? Route.Deployment.ProviderModel, role: null, content: null, finishReason: null, usage);
        _usageForwarded = true;
        return bytes;
    }

    private static async ValueTask DisposeAttemptAsync(StreamHead attempt)
    {
        await attempt.Rest.DisposeAsync();
        attempt.Linked?.Dispose();
        attempt.Timer?.Dispose();
        attempt.Slot?.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        _metrics.StreamEnded();
        await DisposeAttemptAsync(_current);
        if (_completed)
        {
            _call.Succeeded(Route, Total(), _context);
        }
        else if (_failure is not null)
        {
            _call.Failed(Route.Deployment, Route.Fallback, StatusCodes.Status502BadGateway, OpenAiErrorTypes.Upstream, _failure.Message, Total(), _context);
        }
        else
        {
            _call.Failed(Route.Deployment, Route.Fallback, StatusCodes.Status499ClientClosedRequest, "client_closed_request",
                "The client closed the connection mid-stream.", Total(), _context);
        }
    }
}
