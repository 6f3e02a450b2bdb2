using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Onyx.Benchmarks.Upstream;

namespace Onyx.Benchmarks.Load;

/// <summary>
/// The figures of one scenario: both targets, the gateway's peak memory during it, and for a gateway that counts
/// its limits in Redis, how the limiter fared.
/// </summary>
internal sealed record ScenarioResult(Scenario Scenario, TargetSummary Direct, TargetSummary Gateway, long GatewayPeakRssBytes, ProcessSample GatewayAtPeak,
    LimiterState? Limiter = null)
{
    public WarmUpResult? WarmUp { get; init; }

    /// <summary>The bare .NET proxy in the same slices (scenarios marked <see cref="Scenario.Floor"/>): the floor.</summary>
    public TargetSummary? Bare { get; init; }

    public long BarePeakRssBytes { get; init; }
}

/// <summary>
/// How a scenario's warm-up ended: how long it took, whether every process's JIT compiler had gone quiet (false: it
/// reached its cap still compiling), and how long the gateway's JIT compiled meanwhile (null: the gateway offers no
/// EventPipe to read it from, e.g. a Native AOT build).
/// </summary>
internal sealed record WarmUpResult(TimeSpan Duration, bool Quiet, TimeSpan? GatewayJitTime);

/// <summary>
/// The limiter during one scenario's measured slices: how often the replica fell back to counting in memory because
/// Redis was slow or gone (log event 5002; also counted during the warm-up) and came back (5004), the Lua scripts
/// Redis ran for it (an admission per request; a record of its tokens, shared by the calls that finish together),
/// the requests admitted and recorded in Redis (counted from the limiter's entries), and its <c>rate-limits</c>
/// health check at the end.
/// </summary>
internal sealed record LimiterState(int FallbacksToMemory, int BackToRedis, int FallbacksDuringWarmUp, long RedisScriptCalls, long RedisScriptMicroseconds,
    long AdmittedInRedis, long RecordedInRedis, string HealthAtEnd);

/// <summary>
/// Drives a fixed concurrency for a fixed time, alternating short slices straight to the upstream and through
/// the gateway (and, for the floor, through the bare proxy), so all see the same machine noise; the gateway's cost
/// is the difference between them.
/// </summary>
internal sealed class LoadRunner(HttpClient http, UpstreamProcess upstream, GatewayProcess gateway, Reference.BareProxyProcess? bare = null)
{
    /// <summary>A warm-up round in which no process's JIT compiled for more than this share of the round ends the warm-up.</summary>
    private const double QuietJitShare = 0.01;

    /// <summary>The warm-up ends here even if a JIT is still compiling (the report says so).</summary>
    private static readonly TimeSpan MaxWarmUp = TimeSpan.FromSeconds(60);

    /// <summary>A gap this long between two reads of a paced stream counts as a stall.</summary>
    private static readonly TimeSpan StallGap = TimeSpan.FromSeconds(1);

    private static readonly MediaTypeHeaderValue Json = new("application/json");

    /// <summary>Set on every answer the limiter admitted: its presence shows the limits really ran.</summary>
    private const string RemainingRequestsHeader = "x-ratelimit-remaining-requests";

    public async Task<ScenarioResult> RunAsync(Scenario scenario, Action<string> progress)
    {
        await upstream.SetPacingAsync(http, scenario.Tokens, scenario.TokenDelay);
        var direct = new LatencyRecorder("direct");
        var through = new LatencyRecorder("gateway");
        var directTarget = new Target(new Uri(upstream.Root, "v1/chat/completions"), Body(FastUpstream.Model, scenario.Stream));
        var gatewayTarget = GatewayTarget(scenario);
        var lostBeforeWarmUp = gateway.RedisLostCount;
        // The middle process whose CPU time a slice is charged with: the gateway, or the bare proxy in its slices.
        var targets = new List<(Target Target, LatencyRecorder Recorder, Func<ProcessSample> Middle)>
        {
            (directTarget, direct, gateway.Sample),
            (gatewayTarget, through, gateway.Sample),
        };
        LatencyRecorder? floor = null;
        if (scenario.Floor && bare is not null)
        {
            floor = new LatencyRecorder("bare proxy");
            targets.Insert(1, (new Target(new Uri(bare.Root, "v1/chat/completions"), Body(FastUpstream.Model, scenario.Stream)), floor, bare.Sample));
        }

        var warmUp = await WarmUpAsync(scenario, [.. targets.Select(t => t.Target)], progress);
        progress($"{scenario.Name}: warm-up {warmUp.Duration.TotalSeconds:0} s, " +
            (warmUp.Quiet ? "every JIT quiet" : "a JIT still compiling at the cap") +
            (warmUp.GatewayJitTime is { } jit ? $" (the gateway's JIT compiled {jit.TotalSeconds:0.0} s)" : " (the gateway's JIT not observable)"));
        gateway.ResetPeakRss();
        bare?.ResetPeakRss();
        var (lostBefore, backBefore) = (gateway.RedisLostCount, gateway.RedisBackCount);
        var scriptsBefore = gateway.Redis is { } redis ? await redis.ScriptStatsAsync() : default;
        // Counted from the limiter's entries a round of slices at a time: each round is far shorter than the window.
        var (admitted, recorded, countedUntil) = (0L, 0L, scriptsBefore.ClockMs);
        async Task CountLimiterEntriesAsync()
        {
            if (gateway.Redis is { } limits)
            {
                var counted = await limits.CountedAsync(GatewayProcess.BenchmarkUser, countedUntil);
                (admitted, recorded, countedUntil) = (admitted + counted.Admitted, recorded + counted.Recorded, counted.Until);
            }
        }

        // The gateway's memory, read every half second; the largest reading shows what the peak is made of.
        var atPeak = gateway.Sample();
        using var watching = new CancellationTokenSource();
        var watcher = Task.Run(async () =>
        {
            using var tick = new PeriodicTimer(TimeSpan.FromMilliseconds(500));
            while (await tick.WaitForNextTickAsync(watching.Token).ConfigureAwait(false))
            {
                var now = gateway.Sample();
                if (now.RssBytes > atPeak.RssBytes)
                {
                    atPeak = now;
                }
            }
        });

        var slices = Math.Max(1, (int)Math.Round(scenario.DurationPerTarget / scenario.Slice));
        for (var i = 0; i < slices; i++)
        {
            // Rotate which target goes first, so none always follows another.
            foreach (var (target, recorder, middle) in targets.Skip(i % targets.Count).Concat(targets.Take(i % targets.Count)))
            {
                var before = middle();
                var redisBefore = gateway.Redis?.Sample();
                var started = Stopwatch.GetTimestamp();
                await SliceAsync(scenario, target, recorder, scenario.Slice);
                recorder.Wall += Stopwatch.GetElapsedTime(started);
                recorder.GatewayCpu += middle().CpuTime - before.CpuTime;
                if (redisBefore is { } redisStart)
                {
                    recorder.RedisCpu += gateway.Redis!.Sample().CpuTime - redisStart.CpuTime;
                }
            }
            await CountLimiterEntriesAsync();
            var limiter = gateway.Redis is null ? ""
                : $", 429s {through.Refused}, fallbacks to memory {gateway.RedisLostCount - lostBefore}";
            var floorProgress = floor is null ? "" : $", bare proxy {floor.Requests} req";
            progress($"{scenario.Name}: slice {i + 1}/{slices}, direct {direct.Requests} req, gateway {through.Requests} req{floorProgress}, errors {direct.Errors}/{through.Errors}{(floor is null ? "" : "/" + floor.Errors)}{limiter}");
        }
        await watching.CancelAsync();
        try
        {
            await watcher;
        }
        catch (OperationCanceledException)
        {
        }
        LimiterState? state = null;
        if (gateway.Redis is { } limitsRedis)
        {
            // Tokens are recorded just after each answer, off its path: let the last ones land.
            await Task.Delay(TimeSpan.FromMilliseconds(500));
            var scripts = await limitsRedis.ScriptStatsAsync() - scriptsBefore;
            await CountLimiterEntriesAsync();
            state = new LimiterState(gateway.RedisLostCount - lostBefore, gateway.RedisBackCount - backBefore, lostBefore - lostBeforeWarmUp,
                scripts.Calls, scripts.Microseconds, admitted, recorded, await gateway.ReadRateLimitHealthAsync(http));
        }
        return new ScenarioResult(scenario, direct.Summarize(), through.Summarize(), gateway.Sample().PeakRssBytes, atPeak, state)
        {
            WarmUp = warmUp,
            Bare = floor?.Summarize(),
            BarePeakRssBytes = floor is null ? 0 : bare!.Sample().PeakRssBytes,
        };
    }

    /// <summary>
    /// Warms every path (connection pools, first compilations), then goes on in rounds, one short slice per target,
    /// until a round in which no process compiled for more than <see cref="QuietJitShare"/> of it: the runtime keeps
    /// recompiling hot methods with what it learnt of them (tiered compilation) for several seconds of load, and a
    /// slice measured meanwhile measures the compiler sharing the cores. Watched: the gateway, the fake upstream, the
    /// bare proxy (when it takes part) over EventPipe, and this process. A process without EventPipe (a gateway
    /// built with Native AOT has no JIT) counts as quiet.
    /// </summary>
    private async Task<WarmUpResult> WarmUpAsync(Scenario scenario, IReadOnlyList<Target> targets, Action<string> progress)
    {
        var round = TimeSpan.FromSeconds(Math.Min(3, scenario.Slice.TotalSeconds));
        using var gatewayJit = RuntimeCounters.TryStart(gateway.ProcessId);
        using var upstreamJit = RuntimeCounters.Start(upstream.ProcessId);
        using var bareJit = scenario.Floor && bare is not null ? RuntimeCounters.Start(bare.ProcessId) : null;
        TimeSpan[] JitTimes() => [gatewayJit?.JitTime ?? TimeSpan.Zero, upstreamJit.JitTime, bareJit?.JitTime ?? TimeSpan.Zero, System.Runtime.JitInfo.GetCompilationTime()];

        var clock = Stopwatch.StartNew();
        while (true)
        {
            var before = JitTimes();
            var started = clock.Elapsed;
            foreach (var target in targets)
            {
                await SliceAsync(scenario, target, new LatencyRecorder("warm-up"), round);
            }
            var allowed = (clock.Elapsed - started) * QuietJitShare;
            var compiled = JitTimes().Zip(before, (after, start) => after - start).ToArray();
            var quiet = compiled.All(time => time <= allowed);
            progress($"{scenario.Name}: warm-up round, JIT ms: gateway {compiled[0].TotalMilliseconds:0}, upstream {compiled[1].TotalMilliseconds:0}, " +
                $"bare proxy {compiled[2].TotalMilliseconds:0}, load generator {compiled[3].TotalMilliseconds:0} (quiet at {allowed.TotalMilliseconds:0})");
            if (quiet || clock.Elapsed >= MaxWarmUp)
            {
                return new WarmUpResult(clock.Elapsed, quiet, gatewayJit?.JitTime);
            }
        }
    }

    /// <summary>Runs the gateway alone at a fixed concurrency for <paramref name="duration"/>; for the soak.</summary>
    public async Task RunGatewayAsync(Scenario scenario, LatencyRecorder recorder, TimeSpan duration)
    {
        await upstream.SetPacingAsync(http, scenario.Tokens, scenario.TokenDelay);
        await SliceAsync(scenario, GatewayTarget(scenario), recorder, duration);
    }

    /// <summary>Requests through the gateway carry its API key, if it has one; requests straight to the upstream never do.</summary>
    private Target GatewayTarget(Scenario scenario) => new(
        new Uri(gateway.BaseAddress, "v1/chat/completions"),
        Body(Scenario.GatewayModel, scenario.Stream),
        gateway.ApiKey is { } key ? new AuthenticationHeaderValue("Bearer", key) : null);

    private async Task SliceAsync(Scenario scenario, Target target, LatencyRecorder recorder, TimeSpan duration)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var workers = Enumerable.Range(0, scenario.Concurrency).Select(async worker =>
        {
            await Task.Yield();
            if (scenario.StartSpread > TimeSpan.Zero)
            {
                await Task.Delay(scenario.StartSpread * worker / scenario.Concurrency);
            }
            while (Stopwatch.GetTimestamp() < deadline)
            {
                await OneRequestAsync(scenario, target, recorder);
            }
        });
        await Task.WhenAll(workers);
    }

    private async Task OneRequestAsync(Scenario scenario, Target target, LatencyRecorder recorder)
    {
        var start = Stopwatch.GetTimestamp();
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, target.Uri)
            {
                Content = new ByteArrayContent(target.Body) { Headers = { ContentType = Json } },
                Headers = { Authorization = target.Authorization },
            };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            if (!response.IsSuccessStatusCode)
            {
                recorder.Error($"HTTP {(int)response.StatusCode}", refused: response.StatusCode == HttpStatusCode.TooManyRequests);
                return;
            }
            var limited = response.Headers.Contains(RemainingRequestsHeader);
            await using var body = await response.Content.ReadAsStreamAsync();
            if (!scenario.Stream)
            {
                await body.CopyToAsync(Stream.Null);
                var elapsed = Stopwatch.GetElapsedTime(start);
                recorder.Record(elapsed, elapsed, stalled: false, limited);
                return;
            }
            var (firstToken, done, stalled) = await ReadStreamAsync(body, start);
            var total = Stopwatch.GetElapsedTime(start);
            if (firstToken is null || !done)
            {
                recorder.Error(firstToken is null ? "stream without content" : "stream without [DONE]");
                return;
            }
            recorder.Record(firstToken.Value, total, stalled, limited);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException)
        {
            recorder.Error(ex.GetType().Name + ": " + ex.Message);
        }
    }

    private static readonly byte[] ContentMarker = "\"content\":\""u8.ToArray();
    private static readonly byte[] DoneMarker = "data: [DONE]"u8.ToArray();

    /// <summary>Reads an SSE body: when the first non-empty <c>content</c> arrived, whether <c>[DONE]</c> came, and any long gap.</summary>
    private static async Task<(TimeSpan? FirstToken, bool Done, bool Stalled)> ReadStreamAsync(Stream body, long start)
    {
        var buffer = new byte[16 * 1024];
        var carry = 0; // bytes kept from the previous read, so a marker split across reads is still found
        TimeSpan? firstToken = null;
        var done = false;
        var stalled = false;
        var lastRead = Stopwatch.GetTimestamp();
        while (true)
        {
            var read = await body.ReadAsync(buffer.AsMemory(carry));
            var now = Stopwatch.GetTimestamp();
            stalled |= Stopwatch.GetElapsedTime(lastRead, now) > StallGap;
            lastRead = now;
            if (read == 0)
            {
                break;
            }
            var span = buffer.AsSpan(0, carry + read);
            if (firstToken is null)
            {
                for (var at = span.IndexOf(ContentMarker); at >= 0; )
                {
                    var next = at + ContentMarker.Length;
                    if (next < span.Length && span[next] != (byte)'"')
                    {
                        firstToken = Stopwatch.GetElapsedTime(start, now);
                        break;
                    }
                    var rest = span[next..].IndexOf(ContentMarker);
                    at = rest < 0 ? -1 : next + rest;
                }
            }
            done |= span.IndexOf(DoneMarker) >= 0;
            carry = Math.Min(span.Length, DoneMarker.Length + 4);
            span[^carry..].CopyTo(buffer);
        }
        return (firstToken, done, stalled);
    }

    private static byte[] Body(string model, bool stream) => Encoding.UTF8.GetBytes($$"""
        {"model":"{{model}}","stream":{{(stream ? "true" : "false")}},{{(stream ? "\"stream_options\":{\"include_usage\":true}," : "")}}"max_tokens":256,"temperature":0.2,
         "messages":[{"role":"system","content":"You are a concise assistant."},{"role":"user","content":"Write one short sentence about gateways."}]}
        """);

    private sealed record Target(Uri Uri, byte[] Body, AuthenticationHeaderValue? Authorization = null);
}
