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
/// No admission does work in proportion to the size of a window: counts come from ranks (<c>ZCOUNT</c>,
/// <c>ZCARD</c>), the window's tokens from the running total, and each admission drops at most
/// <see cref="MaxExpiredDroppedPerAdmission"/> entries that left the window (the rest go with the next
/// admissions; until then they are skipped by rank, so counts stay exact). A user who sent a few hundred thousand
/// requests in a minute and then paused would otherwise stall Redis, for every replica and user, for a third of a
/// second on the admission that drops them.
/// </remarks>
internal sealed class RedisUsageStore(IConnectionMultiplexer redis, IOptions<OnyxOptions> options) : IUsageStore
{
    /// <summary>Entries that left the window dropped by one admission, per sorted set.</summary>
    internal const int MaxExpiredDroppedPerAdmission = 1000;

    // KEYS: four per subject (requests, tokens, token total, in flight).
    // ARGV: window ms, parallel lease ms, request member, most expired entries to drop per set, then per subject:
    // rpm, tpm, max parallel (0 = none).
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
        local drop = tonumber(ARGV[4])
        local edge = now - window
        -- Numbers go to Redis as integer strings: Redis would format a Lua number with "%.17g", which is slow.
        -- ('%d' formats a C long: 64 bits on the 64-bit Unix builds Redis supports, wide enough for ms timestamps.)
        local function int(n) return string.format('%d', n) end
        local nowArg, edgeArg = int(now), int(edge)
        local subjects = #KEYS / 4
        local out = {0, 0}
        local code, retry = 0, 0
        -- Drops the entries that left the window, at most `drop` of them. Returns the rank of the first entry still in
        -- it and how many are in it. Only a set longer than `drop` can hold more: its entry at that rank tells.
        local function trim(key)
          local card = redis.call('ZCARD', key)
          if card > drop and tonumber(redis.call('ZRANGE', key, int(drop - 1), int(drop - 1), 'WITHSCORES')[2]) <= edge then
            redis.call('ZREMRANGEBYRANK', key, '0', int(drop - 1))
            local left = redis.call('ZCOUNT', key, '-inf', edgeArg)
            return left, card - drop - left
          end
          return 0, card - redis.call('ZREMRANGEBYSCORE', key, '-inf', edgeArg)
        end
        local function totalAfter(entry) return tonumber(string.match(entry, '^(%d+):')) end
        for s = 0, subjects - 1 do
          local req, tok, total, par = KEYS[s * 4 + 1], KEYS[s * 4 + 2], KEYS[s * 4 + 3], KEYS[s * 4 + 4]
          local rpm, tpm, maxpar = tonumber(ARGV[s * 3 + 5]), tonumber(ARGV[s * 3 + 6]), tonumber(ARGV[s * 3 + 7])
          local reqFirst, requests = trim(req)
          local reqReset = 0
          if requests > 0 then reqReset = tonumber(redis.call('ZRANGE', req, int(reqFirst), int(reqFirst), 'WITHSCORES')[2]) + window - now end
          local tokFirst, tokEntries = trim(tok)
          local tokens, tokReset, totalNow = 0, 0, 0
          if tokEntries > 0 then
            local oldest = redis.call('ZRANGE', tok, int(tokFirst), int(tokFirst), 'WITHSCORES')
            totalNow = tonumber(redis.call('GET', total) or '0')
            local after, own = string.match(oldest[1], '^(%d+):(%d+):')
            -- Never below 0, even if the total was lost (evicted) while entries remained.
            tokens = math.max(0, totalNow - tonumber(after) + tonumber(own))
            if tokens > 0 then tokReset = tonumber(oldest[2]) + window - now end
          end
          if code == 0 then
            if rpm > 0 and requests >= rpm then
              code = s * 3 + 1
              local rank = reqFirst + requests - rpm
              retry = tonumber(redis.call('ZRANGE', req, int(rank), int(rank), 'WITHSCORES')[2]) + window - now
            elseif tpm > 0 and tokens >= tpm then
              code = s * 3 + 2
              -- The first entry whose leaving brings the window under tpm: after it, fewer than tpm remain.
              -- Totals grow with rank, so a binary search over ranks finds it.
              local lo, hi = tokFirst, redis.call('ZCARD', tok) - 1
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
            if tonumber(ARGV[s * 3 + 7]) > 0 then
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
    // KEYS: three per subject of each call in turn (tokens, token total, in flight).
    // ARGV: window ms, then per call: its number of subjects, its tokens, its request member.
    private const string RecordScript = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local nowArg = string.format('%d', now)
        local k = 0
        for a = 2, #ARGV, 3 do
          local tokens = tonumber(ARGV[a + 1])
          local member = ARGV[a + 2]
          for s = 1, tonumber(ARGV[a]) do
            local tok, total, par = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
            if tokens > 0 then
              local after = redis.call('INCRBY', total, ARGV[a + 1])
              redis.call('ZADD', tok, nowArg, string.format('%016d', after) .. ':' .. ARGV[a + 1] .. ':' .. member)
              redis.call('PEXPIRE', tok, ARGV[1])
              redis.call('PEXPIRE', total, ARGV[1])
            end
            redis.call('ZREM', par, member)
            k = k + 3
          end
        end
        return 1
        """;

    // The token keys' names changed with their layout (entries once held only their own tokens, and the sum was
    // decremented): replicas of both versions during a rolling upgrade count tokens apart for at most one window
    // instead of misreading each other's entries.
    private const string TokensSuffix = ":tokens";
    private const string TokensTotalSuffix = ":tokens-total";

    private readonly RateLimitOptions _options = options.Value.RateLimits;

    public async Task<Admission> AdmitAsync(IReadOnlyList<LimitSubject> subjects, string member, CancellationToken cancellationToken)
    {
        var keys = new RedisKey[subjects.Count * 4];
        var args = new RedisValue[4 + subjects.Count * 3];
        args[0] = (long)_options.Window.TotalMilliseconds;
        args[1] = (long)_options.ParallelLease.TotalMilliseconds;
        args[2] = member;
        args[3] = MaxExpiredDroppedPerAdmission;
        for (var i = 0; i < subjects.Count; i++)
        {
            var subject = subjects[i];
            keys[i * 4] = subject.Key + ":req";
            keys[i * 4 + 1] = subject.Key + TokensSuffix;
            keys[i * 4 + 2] = subject.Key + TokensTotalSuffix;
            keys[i * 4 + 3] = subject.Key + ":par";
            args[4 + i * 3] = subject.Rpm;
            args[5 + i * 3] = subject.Tpm;
            args[6 + i * 3] = subject.MaxParallel;
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
        var keys = new List<RedisKey>(records.Count * 3);
        var args = new RedisValue[1 + records.Count * 3];
        args[0] = (long)_options.Window.TotalMilliseconds;
        for (var r = 0; r < records.Count; r++)
        {
            var record = records[r];
            foreach (var subject in record.Subjects)
            {
                keys.Add(subject.Key + TokensSuffix);
                keys.Add(subject.Key + TokensTotalSuffix);
                keys.Add(subject.Key + ":par");
            }
            args[1 + r * 3] = record.Subjects.Count;
            args[2 + r * 3] = record.Tokens;
            args[3 + r * 3] = record.Member;
        }
        return redis.GetDatabase().ScriptEvaluateAsync(RecordScript, [.. keys], args);
    }

    /// <summary>Whether Redis answers now (the limiter's way back from its fallback).</summary>
    public Task PingAsync() => redis.GetDatabase().PingAsync();
}
