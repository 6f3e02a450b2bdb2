using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;
using StackExchange.Redis;

namespace Onyx.Gateway.RateLimiting;

/// <summary>
/// The shared counters, in Redis: per subject a sorted set of admitted requests and one of token entries (scored
/// by time), a running token total, and a sorted set of requests in flight. Each admission is one Lua script — one
/// atomic round trip that checks and counts for every subject, timed by the Redis server's own clock so replicas'
/// clock differences cannot widen the window. Written by hand because no .NET library offers an exact rolling
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
/// command it runs, so an admission makes as few as it can.
/// </remarks>
internal sealed class RedisUsageStore(IConnectionMultiplexer redis, IOptions<OnyxOptions> options) : IUsageStore
{
    /// <summary>Entries that left the window dropped by one record script, per sorted set.</summary>
    internal const int MaxExpiredDroppedPerRecord = 1000;

    // KEYS: four per subject (requests, tokens, token total, in flight).
    // ARGV: window ms, parallel lease ms, request member, then per subject: rpm, tpm, max parallel (0 = none).
    // Returns: refusal code (0 admitted, else subject * 3 + limit + 1), retry ms, then per subject:
    // requests, ms until the oldest leaves, tokens, ms until the oldest tokens leave.
    // A token entry is "<running total after it, 16 digits>:<its tokens>:<request member>": the window's tokens are
    // the total now minus the total before its oldest entry. The digits are padded so that entries of the same
    // millisecond sort (by member) in the order they were added.
    private const string AdmitScript = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local window = tonumber(ARGV[1])
        local lease = tonumber(ARGV[2])
        local member = ARGV[3]
        -- Numbers go to Redis as integer strings: Redis would format a Lua number with "%.17g", which is slow.
        -- ('%d' formats a C long: 64 bits on the 64-bit Unix builds Redis supports, wide enough for ms timestamps.)
        local function int(n) return string.format('%d', n) end
        local nowArg = int(now)
        -- In the window: scored after its edge. Older entries may still be in the sets (see the record script).
        local inWindow = '(' .. int(now - window)
        local subjects = #KEYS / 4
        local out = {0, 0}
        local code, retry = 0, 0
        -- The oldest entry in the window, as {member, score}, or nil.
        local function oldest(key)
          local e = redis.call('ZRANGE', key, inWindow, '+inf', 'BYSCORE', 'LIMIT', '0', '1', 'WITHSCORES')
          if e[1] then return e end
        end
        local function totalAfter(entry) return tonumber(string.match(entry, '^(%d+):')) end
        for s = 0, subjects - 1 do
          local req, tok, total, par = KEYS[s * 4 + 1], KEYS[s * 4 + 2], KEYS[s * 4 + 3], KEYS[s * 4 + 4]
          local rpm, tpm, maxpar = tonumber(ARGV[s * 3 + 4]), tonumber(ARGV[s * 3 + 5]), tonumber(ARGV[s * 3 + 6])
          local requests = redis.call('ZCOUNT', req, inWindow, '+inf')
          local reqReset = 0
          if requests > 0 then reqReset = tonumber(oldest(req)[2]) + window - now end
          local first = oldest(tok)
          local tokens, tokReset, totalNow = 0, 0, 0
          if first then
            totalNow = tonumber(redis.call('GET', total) or '0')
            local after, own = string.match(first[1], '^(%d+):(%d+):')
            -- Never below 0, even if the total was lost (evicted) while entries remained.
            tokens = math.max(0, totalNow - tonumber(after) + tonumber(own))
            if tokens > 0 then tokReset = tonumber(first[2]) + window - now end
          end
          if code == 0 then
            if rpm > 0 and requests >= rpm then
              code = s * 3 + 1
              -- The entry whose leaving brings the window under rpm: the last `requests` entries are in it.
              local rank = redis.call('ZCARD', req) - rpm
              retry = tonumber(redis.call('ZRANGE', req, int(rank), int(rank), 'WITHSCORES')[2]) + window - now
            elseif tpm > 0 and tokens >= tpm then
              code = s * 3 + 2
              -- The first entry whose leaving brings the window under tpm: after it, fewer than tpm remain.
              -- Totals grow with rank, so a binary search over ranks finds it.
              local lo, hi = redis.call('ZRANK', tok, first[1]), redis.call('ZCARD', tok) - 1
              while lo < hi do
                local mid = math.floor((lo + hi) / 2)
                if totalNow - totalAfter(redis.call('ZRANGE', tok, int(mid), int(mid))[1]) < tpm then hi = mid else lo = mid + 1 end
              end
              retry = tonumber(redis.call('ZRANGE', tok, int(lo), int(lo), 'WITHSCORES')[2]) + window - now
            elseif maxpar > 0 then
              redis.call('ZREMRANGEBYSCORE', par, '-inf', int(now - lease))
              if redis.call('ZCARD', par) >= maxpar then
                code = s * 3 + 3
                retry = 1000
              end
            end
          end
          table.insert(out, requests)
          table.insert(out, reqReset)
          table.insert(out, tokens)
          table.insert(out, tokReset)
        end
        if code == 0 then
          for s = 0, subjects - 1 do
            redis.call('ZADD', KEYS[s * 4 + 1], nowArg, member)
            redis.call('PEXPIRE', KEYS[s * 4 + 1], ARGV[1])
            if tonumber(ARGV[s * 3 + 6]) > 0 then
              redis.call('ZADD', KEYS[s * 4 + 4], nowArg, member)
              redis.call('PEXPIRE', KEYS[s * 4 + 4], ARGV[2])
            end
            out[s * 4 + 3] = out[s * 4 + 3] + 1
            if out[s * 4 + 4] == 0 then out[s * 4 + 4] = window end
          end
        end
        out[1] = code
        out[2] = retry
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

    public async Task<Admission> AdmitAsync(IReadOnlyList<LimitSubject> subjects, string member, CancellationToken cancellationToken)
    {
        var keys = new RedisKey[subjects.Count * 4];
        var args = new RedisValue[3 + subjects.Count * 3];
        args[0] = (long)_options.Window.TotalMilliseconds;
        args[1] = (long)_options.ParallelLease.TotalMilliseconds;
        args[2] = member;
        for (var i = 0; i < subjects.Count; i++)
        {
            var subject = subjects[i];
            keys[i * 4] = subject.Key + RequestsSuffix;
            keys[i * 4 + 1] = subject.Key + TokensSuffix;
            keys[i * 4 + 2] = subject.Key + TokensTotalSuffix;
            keys[i * 4 + 3] = subject.Key + InFlightSuffix;
            args[3 + i * 3] = subject.Rpm;
            args[4 + i * 3] = subject.Tpm;
            args[5 + i * 3] = subject.MaxParallel;
        }
        var result = (long[])(await redis.GetDatabase().ScriptEvaluateAsync(AdmitScript, keys, args))!;
        var usage = new SubjectUsage[subjects.Count];
        for (var i = 0; i < usage.Length; i++)
        {
            usage[i] = new SubjectUsage(result[2 + i * 4], TimeSpan.FromMilliseconds(result[3 + i * 4]),
                result[4 + i * 4], TimeSpan.FromMilliseconds(result[5 + i * 4]));
        }
        var code = result[0];
        return code == 0
            ? Admission.Admit(usage)
            : Admission.Refuse((int)((code - 1) / 3), (LimitKind)((code - 1) % 3), TimeSpan.FromMilliseconds(result[1]), usage);
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
