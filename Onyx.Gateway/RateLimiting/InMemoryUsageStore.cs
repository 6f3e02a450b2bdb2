using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;

namespace Onyx.Gateway.RateLimiting;

/// <summary>
/// The same rolling windows as <see cref="RedisUsageStore"/>, in this process: the store of a gateway without
/// Redis, and every replica's fallback while Redis is unreachable. Timed by the <see cref="TimeProvider"/>.
/// </summary>
internal sealed class InMemoryUsageStore(IOptions<OnyxOptions> options, TimeProvider time) : IUsageStore
{
    /// <summary>Subjects whose windows emptied are dropped every this many admissions.</summary>
    private const int SweepEvery = 4096;

    private readonly RateLimitOptions _options = options.Value.RateLimits;
    private readonly Dictionary<string, Window> _windows = new(StringComparer.Ordinal);
    // One lock for all subjects: a request's subjects (user and end user) are checked and counted together, and
    // the critical section is a few queue operations.
    private readonly Lock _lock = new();
    private int _admissions;

    public Task<Admission> AdmitAsync(IReadOnlyList<LimitSubject> subjects, string member, CancellationToken cancellationToken) =>
        Task.FromResult(Admit(subjects, member));

    public Task RecordAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken)
    {
        Record(records);
        return Task.CompletedTask;
    }

    public void Record(IEnumerable<UsageRecord> records)
    {
        foreach (var record in records)
        {
            Record(record.Subjects, record.Member, record.Tokens);
        }
    }

    public Admission Admit(IReadOnlyList<LimitSubject> subjects, string member)
    {
        var now = time.GetUtcNow();
        var window = _options.Window;
        var usage = new SubjectUsage[subjects.Count];
        int? refusedSubject = null;
        var refusedLimit = LimitKind.Requests;
        var retry = TimeSpan.Zero;
        lock (_lock)
        {
            if (++_admissions % SweepEvery == 0)
            {
                Sweep(now);
            }
            var windows = new Window[subjects.Count];
            for (var i = 0; i < subjects.Count; i++)
            {
                var subject = subjects[i];
                var w = windows[i] = Get(subject.Key);
                w.Expire(now - window, now - _options.ParallelLease);
                usage[i] = new SubjectUsage(w.Requests.Count, w.Requests.TryPeek(out var oldest) ? oldest + window - now : TimeSpan.Zero,
                    w.TokenSum, w.Tokens.TryPeek(out var oldestTokens) ? oldestTokens.At + window - now : TimeSpan.Zero);
                if (refusedSubject is not null)
                {
                    continue;
                }
                if (subject.Rpm > 0 && w.Requests.Count >= subject.Rpm)
                {
                    (refusedSubject, refusedLimit) = (i, LimitKind.Requests);
                    retry = w.Requests.ElementAt((int)(w.Requests.Count - subject.Rpm)) + window - now;
                }
                else if (subject.Tpm > 0 && w.TokenSum >= subject.Tpm)
                {
                    (refusedSubject, refusedLimit) = (i, LimitKind.Tokens);
                    var left = w.TokenSum;
                    foreach (var entry in w.Tokens)
                    {
                        left -= entry.Count;
                        if (left < subject.Tpm)
                        {
                            retry = entry.At + window - now;
                            break;
                        }
                    }
                }
                else if (subject.MaxParallel > 0 && w.InFlight.Count >= subject.MaxParallel)
                {
                    (refusedSubject, refusedLimit, retry) = (i, LimitKind.Parallel, TimeSpan.FromSeconds(1));
                }
            }
            if (refusedSubject is { } refused)
            {
                return Admission.Refuse(refused, refusedLimit, retry, usage);
            }
            for (var i = 0; i < subjects.Count; i++)
            {
                windows[i].Requests.Enqueue(now);
                if (subjects[i].MaxParallel > 0)
                {
                    windows[i].InFlight[member] = now;
                }
                usage[i] = usage[i] with
                {
                    Requests = usage[i].Requests + 1,
                    RequestsReset = usage[i].Requests == 0 ? window : usage[i].RequestsReset,
                };
            }
        }
        return Admission.Admit(usage);
    }

    public void Record(IReadOnlyList<LimitSubject> subjects, string member, long tokens)
    {
        var now = time.GetUtcNow();
        lock (_lock)
        {
            foreach (var subject in subjects)
            {
                var w = Get(subject.Key);
                if (tokens > 0)
                {
                    w.Tokens.Enqueue((now, tokens));
                    w.TokenSum += tokens;
                }
                w.InFlight.Remove(member);
            }
        }
    }

    private Window Get(string key)
    {
        if (!_windows.TryGetValue(key, out var window))
        {
            _windows[key] = window = new Window();
        }
        return window;
    }

    private void Sweep(DateTimeOffset now)
    {
        foreach (var (key, w) in _windows)
        {
            w.Expire(now - _options.Window, now - _options.ParallelLease);
            if (w.Requests.Count == 0 && w.Tokens.Count == 0 && w.InFlight.Count == 0)
            {
                _windows.Remove(key);
            }
        }
    }

    private sealed class Window
    {
        public Queue<DateTimeOffset> Requests { get; } = new();

        public Queue<(DateTimeOffset At, long Count)> Tokens { get; } = new();

        public long TokenSum { get; set; }

        public Dictionary<string, DateTimeOffset> InFlight { get; } = new(StringComparer.Ordinal);

        /// <summary>Drops what left the window (at or before <paramref name="edge"/>) and abandoned in-flight slots.</summary>
        public void Expire(DateTimeOffset edge, DateTimeOffset leaseEdge)
        {
            while (Requests.TryPeek(out var at) && at <= edge)
            {
                Requests.Dequeue();
            }
            while (Tokens.TryPeek(out var entry) && entry.At <= edge)
            {
                TokenSum -= Tokens.Dequeue().Count;
            }
            if (InFlight.Count > 0)
            {
                foreach (var (member, since) in InFlight)
                {
                    if (since <= leaseEdge)
                    {
                        InFlight.Remove(member);
                    }
                }
            }
        }
    }
}
