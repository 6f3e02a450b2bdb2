using System.Runtime.CompilerServices;
using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;

namespace Onyx.Gateway.Routing;

/// <summary>
/// A stream that has started on one deployment. Yields the chunks to forward, in order. When the upstream breaks or
/// stalls mid-answer, the answer is continued on the next deployment of the chain (<see cref="StreamResumer"/>), with a
/// seam the client cannot see: the same <c>id</c>, <c>created</c> and <c>system_fingerprint</c> throughout, one role,
/// one usage total. When the answer cannot be continued, the failure surfaces as an <see cref="UpstreamException"/>
/// and the caller ends the client's stream with an error event — never a pretend-complete answer. An answer is
/// complete once its finish reason and usage have arrived, whatever the upstream's socket does next. Disposing writes
/// the call's records and frees the attempt.
/// </summary>
internal sealed class RoutedStream : IAsyncDisposable
{
    private readonly CallTracker _call;
    private readonly TimeSpan _idleTimeout;
    private readonly TimeProvider _time;
    private readonly StreamResumer _resumer;
    private readonly Deployment _aliasHead;
    private readonly List<ResumeInfo> _resumes = [];
    private StreamHead _current;
    private string _sentBefore = string.Empty;
    private int _skippedChars;
    private TokenUsage _prior;
    private TokenUsage? _usage;
    private ReadOnlyMemory<byte> _firstChunk;
    private ChunkIdentity? _identity;
    private bool _usageForwarded;
    private bool _finished;
    private bool _toolCall;
    private bool _reasoningOpen;
    private bool _logprobs;
    private bool _completed;
    private UpstreamException? _failure;

    /// <param name="aliasHead">The alias's first deployment, whose <c>resume_streams</c> decides whether answers are continued.</param>
    public RoutedStream(RouteInfo route, StreamHead start, CallTracker call, TimeSpan idleTimeout, TimeProvider time, StreamResumer resumer,
        Deployment aliasHead)
    {
        Route = route;
        _current = start;
        _call = call;
        _idleTimeout = idleTimeout;
        _time = time;
        _resumer = resumer;
        _aliasHead = aliasHead;
        call.StreamOpened();
    }

    /// <summary>The deployment serving the answer now (the last one, after a resume).</summary>
    public RouteInfo Route { get; private set; }

    /// <summary>Each point where the answer broke and was continued elsewhere.</summary>
    public IReadOnlyList<ResumeInfo> Resumes => _resumes;

    private AttemptContext Context => _current.Attempt.Context;

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
                var timer = _current.Attempt.Timer;
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
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        failure = UpstreamErrors.Unexpected(ex, Route.Deployment);
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

            _current.Attempt.BrokeMidStream(failure.Reason);
            _call.AttemptFailed(Route.Deployment, failure, Context);
            var partial = _sentBefore + Context.CompletionText.ToString(_skippedChars, Context.CompletionText.Length - _skippedChars);
            if (StreamResumer.WhyNot(_call.Request, _aliasHead, _toolCall, _reasoningOpen, _logprobs) is { } why)
            {
                throw Fail(failure, why);
            }
            ResumedStream resumed;
            try
            {
                resumed = await _resumer.ContinueAsync(_call, Route.Deployment, partial, cancellationToken);
            }
            catch (UpstreamException ex)
            {
                throw Fail(failure, ex.Message);
            }
            _identity ??= ChunkIdentity.Read(_firstChunk);
            var cut = _usage ?? _call.Estimate(Context);
            _call.AttemptProduced(Route.Deployment, cut);
            _prior += cut;
            _resumes.Add(new ResumeInfo(Route.Deployment.Id, resumed.Route.Deployment.Id, partial.Length, failure.Reason, resumed.How));
            _call.Resumed(Route.Deployment, resumed.Route.Deployment, partial, resumed.SkippedChars, failure.Reason, resumed.How);
            await _current.Attempt.DisposeAsync();
            (Route, _current, _skippedChars, _sentBefore, _usage) = (resumed.Route, resumed.Head, resumed.SkippedChars, partial, null);
        }
        var usage = Total();
        if (_call.Request.IncludeUsage && !_usageForwarded)
        {
            yield return UsageChunk(usage);
        }
        _completed = true;
        // Logged (and its tokens counted) before the client sees [DONE], so its next request sees this one's tokens.
        _call.Succeeded(Route, usage, Context);
    }

    private bool Complete => _finished && _usage is not null;

    /// <summary>Notes finish, usage, tool calls and reasoning; drops or rewrites what the client must not see twice.</summary>
    private bool Forward(StreamChunk chunk, out ReadOnlyMemory<byte> json)
    {
        var info = chunk.Info;
        json = chunk.Json;
        if (chunk.Json.IsEmpty)
        {
            return false;
        }
        if (_firstChunk.IsEmpty)
        {
            _firstChunk = chunk.Json;
        }
        _finished |= info.HasFinishReason;
        _toolCall |= info.HasToolCall;
        _logprobs |= info.HasLogprobs;
        _reasoningOpen = info.HasReasoning || (!info.HasContent && _reasoningOpen);
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
        if (_resumes.Count > 0)
        {
            json = ResumedChunks.Rewrite(chunk.Json, _identity!, info.HasFinishReason ? _resumes : null);
        }
        return true;
    }

    /// <summary>The whole answer's tokens: every cut attempt (estimated) and the last one.</summary>
    private TokenUsage Total()
    {
        var last = _usage ?? _call.Estimate(Context);
        return _resumes.Count == 0 ? last : _prior + last;
    }

    private UpstreamException Fail(UpstreamException failure, string? why)
    {
        _failure = why is null ? failure : new UpstreamException(failure.Kind, $"{failure.Message}; {why}", failure.StatusCode);
        return _failure;
    }

    private byte[] UsageChunk(TokenUsage usage)
    {
        var identity = _identity ??= ChunkIdentity.Read(_firstChunk);
        var bytes = ChatChunks.Build(identity.Id ?? "chatcmpl-" + Route.RequestId, identity.Created ?? _time.GetUtcNow().ToUnixTimeSeconds(),
            Context.ResponseModel ?? Route.Deployment.ProviderModel, role: null, content: null, finishReason: null, usage);
        _usageForwarded = true;
        return bytes;
    }

    public async ValueTask DisposeAsync()
    {
        _call.StreamClosed();
        await _current.Attempt.DisposeAsync();
        if (_completed)
        {
            _call.Succeeded(Route, Total(), Context);
        }
        else if (_failure is not null)
        {
            _call.Failed(Route.Deployment, Route.Fallback, StatusCodes.Status502BadGateway, OpenAiErrorTypes.Upstream, _failure.Message, Total(), Context);
        }
        else
        {
            _call.Failed(Route.Deployment, Route.Fallback, StatusCodes.Status499ClientClosedRequest, "client_closed_request",
                "The client closed the connection mid-stream.", Total(), Context);
        }
    }
}
