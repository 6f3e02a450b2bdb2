using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;
using StackExchange.Redis;

namespace Onyx.Gateway.RateLimiting;

/// <summary>
/// The shared counters, in Redis: per subject a sorted set of admitted requests and one of token entries (scored
/// by time), a running token total, and a sorted set of requests in flight. An admission is checked and counted for
/// every subject atomically, in a Lua script timed by the Redis server's own clock so replicas' clock differences
/// cannot widen the window; admissions that arrive together share one script per user, each still checked in turn. Written by hand because no .NET library offers an exact rolling
/// window across processes: System.Threading.RateLimiting's limiters count inside one process.
/// </summary>
/// <remarks>
/// An admission reads only what is in the window, by score: the requests in it (<c>ZCOUNT</c>), its oldest request
/// and its oldest token entry (<c>ZRANGE … BYSCORE LIMIT 0 1</c>, Redis 6.2 or later), and the running token total;
/// none of that grows with the size of a window. Entries that have left the window cost an admission nothing, so
/// dropping them is left to the scripts that record finished calls (off the request's path, one per batch of
/// calls): each drops at most <see cref="MaxExpiredDroppedPerRecord"/> of them per set. A user who sent a few
/// hundred thousand requests in a minute and then paused would otherwise stall Redis, for every replica and user,
/// for a third of a second on the script that drops them. A Lua <c>redis.call</c> costs Redis several times the
/// command it runs, so an admission makes as few as it can, and admissions in one script read each window once.
/// </remarks>
internal sealed class RedisUsageStore(IConnectionMultiplexer redis, IOptions<OnyxOptions> options) : IUsageStore
{
    /// <summary>Entries that left the window dropped by one record script, per sorted set.</summary>
    internal const int MaxExpiredDroppedPerRecord = 1000;

    /// <summary>
    /// Admissions sent together at most. The script passes a set's new entries to ZADD with Lua's unpack, which fails
    /// from about 4 000 values: far below that.
    /// </summary>
    internal const int MaxAdmissionsPerScript = 256;

    // Any number of admissions of one user, in the order they came (their keys share the user's hash slot).
    // KEYS: four per subject of each admission in turn (requests, tokens, token total, in flight).
    // ARGV: window ms, parallel lease ms, then per admission: its number of subjects, its request member, then per
    // subject: rpm, tpm, max parallel (0 = none).
    // Returns per admission: refusal code (0 admitted, else subject * 3 + limit + 1), retry ms, then per subject:
    // requests, ms until the oldest leaves, tokens, ms until the oldest tokens leave.
    // A token entry is "<running total after it, 16 digits>:<its tokens>:<request member>": the window's tokens are
    // the total now minus the total before its oldest entry. The digits are padded so that entries of the same
    // millisecond sort (by member) in the order they were added.
    // Each subject's window is read once per script (load): the requests in it (ZCOUNT after its edge), its oldest
    // request and token entry, the running total; its requests in flight once, when a limit needs them. Admissions
    // then count on from there in Lua; their entries are added with one ZADD per set (flush), before any refusal's
    // retry is computed from ranks, and at the end.
    // Numbers go to Redis as integer strings (int): Redis would format a Lua number with "%.17g", which is slow;
    // '%d' formats a C long, 64 bits on the 64-bit Unix builds Redis supports, wide enough for ms timestamps.
    // A requests refusal's retry: the entry whose leaving brings the window under rpm (the last `requests` entries
    // are in it). A tokens refusal's: the first entry after which fewer than tpm remain; totals grow with rank, so
    // a binary search over ranks finds it. Never fewer than 0 tokens, even if the total was lost (evicted).
    private const string AdmitScript = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local window = tonumber(ARGV[1])
        local lease = tonumber(ARGV[2])
        local function int(n) return string.format('%d', n) end
        local nowArg = int(now)
        local inWindow = '(' .. int(now - window)
        local function oldest(key)
          local e = redis.call('ZRANGE', key, inWindow, '+inf', 'BYSCORE', 'LIMIT', '0', '1', 'WITHSCORES')
          if e[1] then return e end
        end
        local function totalAfter(entry) return tonumber(string.match(entry, '^(%d+):')) end
        local state, touched = {}, {}
        local function load(k)
          local s = state[KEYS[k]]
          if s then return s end
          s = {req = KEYS[k], tok = KEYS[k + 1], total = KEYS[k + 2], par = KEYS[k + 3], reqReset = 0, tokens = 0, tokReset = 0, totalNow = 0}
          s.requests = redis.call('ZCOUNT', s.req, inWindow, '+inf')
          if s.requests > 0 then s.reqReset = tonumber(oldest(s.req)[2]) + window - now end
          s.first = oldest(s.tok)
          if s.first then
            s.totalNow = tonumber(redis.call('GET', s.total) or '0')
            local after, own = string.match(s.first[1], '^(%d+):(%d+):')
            s.tokens = math.max(0, s.totalNow - tonumber(after) + tonumber(own))
            if s.tokens > 0 then s.tokReset = tonumber(s.first[2]) + window - now end
          end
          state[s.req] = s
          touched[#touched + 1] = s
          return s
        end
        local function inFlight(s)
          if not s.inFlight then
            redis.call('ZREMRANGEBYSCORE', s.par, '-inf', int(now - lease))
            s.inFlight = redis.call('ZCARD', s.par)
          end
          return s.inFlight
        end
        local function zadd(key, members)
          if #members == 1 then return redis.call('ZADD', key, nowArg, members[1]) end
          local args = {'ZADD', key}
          for i, m in ipairs(members) do args[i * 2 + 1] = nowArg; args[i * 2 + 2] = m end
          redis.call(unpack(args))
        end
        local function flush(s)
          if s.added then zadd(s.req, s.added); s.added = nil; s.expireReq = true end
          if s.parAdded then zadd(s.par, s.parAdded); s.parAdded = nil; s.expirePar = true end
        end
        local out = {}
        local k, a = 1, 3
        while a <= #ARGV do
          local n, member = tonumber(ARGV[a]), ARGV[a + 1]
          local code, retry = 0, 0
          for i = 0, n - 1 do
            local s = load(k + i * 4)
            local rpm, tpm, maxpar = tonumber(ARGV[a + 2 + i * 3]), tonumber(ARGV[a + 3 + i * 3]), tonumber(ARGV[a + 4 + i * 3])
            if rpm > 0 and s.requests >= rpm then
              code = i * 3 + 1
              flush(s)
              local rank = redis.call('ZCARD', s.req) - rpm
              retry = tonumber(redis.call('ZRANGE', s.req, int(rank), int(rank), 'WITHSCORES')[2]) + window - now
            elseif tpm > 0 and s.tokens >= tpm then
              code = i * 3 + 2
              local lo, hi = redis.call('ZRANK', s.tok, s.first[1]), redis.call('ZCARD', s.tok) - 1
              while lo < hi do
                local mid = math.floor((lo + hi) / 2)
                if s.totalNow - totalAfter(redis.call('ZRANGE', s.tok, int(mid), int(mid))[1]) < tpm then hi = mid else lo = mid + 1 end
              end
              retry = tonumber(redis.call('ZRANGE', s.tok, int(lo), int(lo), 'WITHSCORES')[2]) + window - now
            elseif maxpar > 0 and inFlight(s) >= maxpar then
              code = i * 3 + 3
              retry = 1000
            end
            if code ~= 0 then break end
          end
          out[#out + 1] = code
          out[#out + 1] = retry
          for i = 0, n - 1 do
            local s = load(k + i * 4)
            if code == 0 then
              s.requests = s.requests + 1
              if s.reqReset == 0 then s.reqReset = window end
              if s.added then s.added[#s.added + 1] = member else s.added = {member} end
              if tonumber(ARGV[a + 4 + i * 3]) > 0 then
                s.inFlight = s.inFlight + 1
                if s.parAdded then s.parAdded[#s.parAdded + 1] = member else s.parAdded = {member} end
              end
            end
            out[#out + 1] = s.requests
            out[#out + 1] = s.reqReset
            out[#out + 1] = s.tokens
            out[#out + 1] = s.tokReset
          end
          k = k + n * 4
          a = a + 2 + n * 3
        end
        for _, s in ipairs(touched) do
          flush(s)
          if s.expireReq then redis.call('PEXPIRE', s.req, ARGV[1]) end
          if s.expirePar then redis.call('PEXPIRE', s.par, ARGV[2]) end
        end
        return out
        """;

    // Any number of finished calls of one user (their keys share the user's hash slot, so this runs on Redis Cluster).
    // KEYS: four per subject of each call in turn (requests, tokens, token total, in flight).
    // ARGV: window ms, most expired entries to drop per set, then per call: its number of subjects, its tokens,
    // its request member.
    // The calls are grouped by subject, so each subject takes the same few redis.calls however many calls finished:
    // one INCRBY of the total by all their tokens (each entry's running total is counted on from the total before),
    // one ZADD of all their entries, one ZREM of all their requests in flight. Then it drops entries that have left
    // the window, at most `drop` per set: the oldest, by rank, as many as ZCOUNT finds older than the window.
    private const string RecordScript = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local function int(n) return string.format('%d', n) end
        local nowArg, edgeArg = int(now), int(now - tonumber(ARGV[1]))
        local drop = tonumber(ARGV[2])
        local function trim(key)
          local expired = redis.call('ZCOUNT', key, '-inf', edgeArg)
          if expired > 0 then redis.call('ZREMRANGEBYRANK', key, '0', int(math.min(expired, drop) - 1)) end
        end
        local subjects, order = {}, {}
        local k = 0
        for a = 3, #ARGV, 3 do
          local tokens, member = tonumber(ARGV[a + 1]), ARGV[a + 2]
          for s = 1, tonumber(ARGV[a]) do
            local g = subjects[KEYS[k + 1]]
            if not g then
              g = {req = KEYS[k + 1], tok = KEYS[k + 2], total = KEYS[k + 3], par = KEYS[k + 4], entries = {}, members = {}, sum = 0}
              subjects[g.req] = g
              table.insert(order, g)
            end
            if tokens > 0 then
              table.insert(g.entries, {tokens, ARGV[a + 1], member})
              g.sum = g.sum + tokens
            end
            table.insert(g.members, member)
            k = k + 4
          end
        end
        for _, g in ipairs(order) do
          if g.sum > 0 then
            local after = redis.call('INCRBY', g.total, int(g.sum)) - g.sum
            local zadd = {'ZADD', g.tok}
            for _, e in ipairs(g.entries) do
              after = after + e[1]
              table.insert(zadd, nowArg)
              table.insert(zadd, string.format('%016d', after) .. ':' .. e[2] .. ':' .. e[3])
            end
            redis.call(unpack(zadd))
            redis.call('PEXPIRE', g.tok, ARGV[1])
            redis.call('PEXPIRE', g.total, ARGV[1])
          end
          redis.call('ZREM', g.par, unpack(g.members))
          trim(g.req)
          trim(g.tok)
        end
        return 1
        """;

    private const string RequestsSuffix = ":req";
    // The token keys' names changed with their layout (entries once held only their own tokens, and the sum was
    // decremented): replicas of both versions during a rolling upgrade count tokens apart for at most one window
    // instead of misreading each other's entries.
    private const string TokensSuffix = ":tokens";
    private const string TokensTotalSuffix = ":tokens-total";
    private const string InFlightSuffix = ":par";

    private readonly RateLimitOptions _options = options.Value.RateLimits;
    private readonly ConcurrentQueue<PendingAdmission> _admissions = new();
    private int _admitting;

    /// <summary>
    /// Counts the request in Redis. With no admission script in flight it goes at once, alone; admissions that
    /// arrive while one is in flight wait for it and then go together, one script per user. Under load Redis then
    /// runs one script, and reads each window once, for several requests; with few requests nothing waits.
    /// </summary>
    public Task<Admission> AdmitAsync(IReadOnlyList<LimitSubject> subjects, string member, CancellationToken cancellationToken)
    {
        var admission = new PendingAdmission(subjects, member, Environment.TickCount64, cancellationToken);
        if (Volatile.Read(ref _admitting) == 0 && Interlocked.CompareExchange(ref _admitting, 1, 0) == 0)
        {
            if (_admissions.IsEmpty)
            {
                return AdmitAloneAsync(admission);
            }
            // Admissions queued before this one go first: the sender found them as it let go.
            _admissions.Enqueue(admission);
            _ = SendAdmissionsAsync();
            return admission.Task;
        }
        _admissions.Enqueue(admission);
        // The script in flight may have ended, and found nothing queued, before the line above.
        if (Interlocked.CompareExchange(ref _admitting, 1, 0) == 0)
        {
            _ = SendAdmissionsAsync();
        }
        return admission.Task;
    }

    /// <summary>The request goes on from the reply itself, with no hand-over to another task in between.</summary>
    private async Task<Admission> AdmitAloneAsync(PendingAdmission admission)
    {
        try
        {
            var at = 0;
            return Read((long[])(await EvaluateAsync([admission]))!, ref at, admission.Subjects.Count);
        }
        finally
        {
            // Then what queued meanwhile; this clears the flag once nothing is left.
            _ = SendAdmissionsAsync();
        }
    }

    /// <summary>The one round of admission scripts in flight: what is queued now, then what queued meanwhile, until none is.</summary>
    private async Task SendAdmissionsAsync()
    {
        // The limiter decides in memory a request whose answer takes longer than this: sent now, it would be counted twice.
        var givenUp = Environment.TickCount64 - (long)_options.RedisTimeout.TotalMilliseconds;
        var batch = new List<PendingAdmission>();
        while (true)
        {
            while (batch.Count < MaxAdmissionsPerScript && _admissions.TryDequeue(out var next))
            {
                if (next.Queued < givenUp)
                {
                    next.TrySetException(new TimeoutException("The rate-limit admission waited longer than RedisTimeout for its turn."));
                }
                else if (next.Cancelled.IsCancellationRequested)
                {
                    // Its client has gone: counted, it would hold a parallel slot until the lease ends.
                    next.TrySetCanceled(next.Cancelled);
                }
                else
                {
                    batch.Add(next);
                }
            }
            if (batch.Count > 0)
            {
                await SendAsync(batch);
                batch.Clear();
                givenUp = Environment.TickCount64 - (long)_options.RedisTimeout.TotalMilliseconds;
                continue;
            }
            // A full fence: the check below must not be read before the flag is down, or an admission queued in between
            // would wait for the next one.
            Interlocked.Exchange(ref _admitting, 0);
            // An admission queued between the last read and the line above would wait for the next one: take it now.
            if (_admissions.IsEmpty || Interlocked.CompareExchange(ref _admitting, 1, 0) != 0)
            {
                return;
            }
        }
    }

    /// <summary>One script per user (a user's keys share a hash slot); completes every admission, whatever happens.</summary>
    private Task SendAsync(List<PendingAdmission> batch)
    {
        var slot = Slot(batch[0].Subjects[0]);
        var oneUser = true;
        for (var i = 1; i < batch.Count && oneUser; i++)
        {
            oneUser = Slot(batch[i].Subjects[0]).SequenceEqual(slot);
        }
        return oneUser
            ? CompleteAsync(batch)
            : Task.WhenAll(batch.GroupBy(p => Slot(p.Subjects[0]).ToString()).Select(user => CompleteAsync(user.ToList())));
    }

    /// <summary>The user part of a subject's key: its Redis Cluster hash tag, shared by the user's end users.</summary>
    private static ReadOnlySpan<char> Slot(LimitSubject subject) => subject.Key.AsSpan(0, subject.Key.IndexOf('}') + 1);

    /// <summary>Admissions of one user in one script; completes each of them, whatever happens.</summary>
    private async Task CompleteAsync(List<PendingAdmission> admissions)
    {
        try
        {
            var result = (long[])(await EvaluateAsync(admissions))!;
            var at = 0;
            foreach (var admission in admissions)
            {
                admission.TrySetResult(Read(result, ref at, admission.Subjects.Count));
            }
        }
        catch (Exception ex)
        {
            foreach (var admission in admissions)
            {
                admission.TrySetException(ex);
            }
        }
    }

    private Task<RedisResult> EvaluateAsync(IReadOnlyList<PendingAdmission> admissions)
    {
        var subjects = 0;
        foreach (var admission in admissions)
        {
            subjects += admission.Subjects.Count;
        }
        var keys = new RedisKey[subjects * 4];
        var args = new RedisValue[2 + admissions.Count * 2 + subjects * 3];
        args[0] = (long)_options.Window.TotalMilliseconds;
        args[1] = (long)_options.ParallelLease.TotalMilliseconds;
        int k = 0, a = 2;
        foreach (var admission in admissions)
        {
            args[a++] = admission.Subjects.Count;
            args[a++] = admission.Member;
            foreach (var subject in admission.Subjects)
            {
                keys[k++] = subject.Key + RequestsSuffix;
                keys[k++] = subject.Key + TokensSuffix;
                keys[k++] = subject.Key + TokensTotalSuffix;
                keys[k++] = subject.Key + InFlightSuffix;
                args[a++] = subject.Rpm;
                args[a++] = subject.Tpm;
                args[a++] = subject.MaxParallel;
            }
        }
        return redis.GetDatabase().ScriptEvaluateAsync(AdmitScript, keys, args);
    }

    private static Admission Read(long[] result, ref int at, int subjects)
    {
        var code = result[at];
        var retry = TimeSpan.FromMilliseconds(result[at + 1]);
        var usage = new SubjectUsage[subjects];
        for (var i = 0; i < usage.Length; i++)
        {
            var u = at + 2 + i * 4;
            usage[i] = new SubjectUsage(result[u], TimeSpan.FromMilliseconds(result[u + 1]), result[u + 2], TimeSpan.FromMilliseconds(result[u + 3]));
        }
        at += 2 + subjects * 4;
        return code == 0 ? Admission.Admit(usage) : Admission.Refuse((int)((code - 1) / 3), (LimitKind)((code - 1) % 3), retry, usage);
    }

    /// <summary>An admission for a script; one that waits for its turn is awaited by <see cref="TaskCompletionSource{TResult}.Task"/>.</summary>
    private sealed class PendingAdmission(IReadOnlyList<LimitSubject> subjects, string member, long queued, CancellationToken cancelled)
        : TaskCompletionSource<Admission>(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        /// <summary>The request's own token: a queued admission whose client has gone is not sent.</summary>
        public CancellationToken Cancelled { get; } = cancelled;
        public IReadOnlyList<LimitSubject> Subjects { get; } = subjects;
        public string Member { get; } = member;
        /// <summary>When it was queued (<see cref="Environment.TickCount64"/>).</summary>
        public long Queued { get; } = queued;
    }

    /// <summary>Records finished calls in one script. They must share one user (one hash slot): see <see cref="UsageLimiter"/>.</summary>
    public Task RecordAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken)
    {
        var keys = new List<RedisKey>(records.Count * 4);
        var args = new RedisValue[2 + records.Count * 3];
        args[0] = (long)_options.Window.TotalMilliseconds;
        args[1] = MaxExpiredDroppedPerRecord;
        for (var r = 0; r < records.Count; r++)
        {
            var record = records[r];
            foreach (var subject in record.Subjects)
            {
                keys.Add(subject.Key + RequestsSuffix);
                keys.Add(subject.Key + TokensSuffix);
                keys.Add(subject.Key + TokensTotalSuffix);
                keys.Add(subject.Key + InFlightSuffix);
            }
            args[2 + r * 3] = record.Subjects.Count;
            args[3 + r * 3] = record.Tokens;
            args[4 + r * 3] = record.Member;
        }
        return redis.GetDatabase().ScriptEvaluateAsync(RecordScript, [.. keys], args);
    }

    /// <summary>Whether Redis answers now (the limiter's way back from its fallback).</summary>
    public Task PingAsync() => redis.GetDatabase().PingAsync();
}
