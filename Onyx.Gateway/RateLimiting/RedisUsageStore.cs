using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;
using StackExchange.Redis;

namespace Onyx.Gateway.RateLimiting;

/// <summary>
/// The shared counters, in Redis: per subject a sorted set of admitted requests and one of token entries (scored
/// by time), a running token sum, and a sorted set of requests in flight. Each admission is one Lua script — one
/// atomic round trip that checks and counts for every subject, timed by the Redis server's own clock so replicas'
/// clock differences cannot widen the window. Written by hand because no .NET library offers an exact rolling
/// window across processes: System.Threading.RateLimiting's limiters count inside one process.
/// </summary>
internal sealed class RedisUsageStore(IConnectionMultiplexer redis, IOptions<OnyxOptions> options) : IUsageStore
{
    // KEYS: four per subject (requests, tokens, token sum, in flight).
    // ARGV: window ms, parallel lease ms, request member, then per subject: rpm, tpm, max parallel (0 = none).
    // Returns: refusal code (0 admitted, else subject * 3 + limit + 1), retry ms, then per subject:
    // requests, ms until the oldest leaves, tokens, ms until the oldest tokens leave.
    private const string AdmitScript = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local window = tonumber(ARGV[1])
        local lease = tonumber(ARGV[2])
        local member = ARGV[3]
        local edge = now - window
        local subjects = #KEYS / 4
        local out = {0, 0}
        local code, retry = 0, 0
        for s = 0, subjects - 1 do
          local req, tok, sum, par = KEYS[s * 4 + 1], KEYS[s * 4 + 2], KEYS[s * 4 + 3], KEYS[s * 4 + 4]
          local rpm, tpm, maxpar = tonumber(ARGV[s * 3 + 4]), tonumber(ARGV[s * 3 + 5]), tonumber(ARGV[s * 3 + 6])
          redis.call('ZREMRANGEBYSCORE', req, '-inf', edge)
          local expired = redis.call('ZRANGEBYSCORE', tok, '-inf', edge)
          local tokens = 0
          if #expired > 0 then
            redis.call('ZREMRANGEBYSCORE', tok, '-inf', edge)
          end
          if redis.call('ZCARD', tok) == 0 then
            redis.call('DEL', sum)
          else
            local gone = 0
            for i = 1, #expired do gone = gone + tonumber(string.match(expired[i], '^%d+')) end
            if gone > 0 then
              tokens = redis.call('DECRBY', sum, gone)
            else
              tokens = tonumber(redis.call('GET', sum) or '0')
            end
          end
          local requests = redis.call('ZCARD', req)
          local reqReset, tokReset = 0, 0
          if requests > 0 then reqReset = tonumber(redis.call('ZRANGE', req, 0, 0, 'WITHSCORES')[2]) + window - now end
          if tokens > 0 then tokReset = tonumber(redis.call('ZRANGE', tok, 0, 0, 'WITHSCORES')[2]) + window - now end
          if code == 0 then
            if rpm > 0 and requests >= rpm then
              code = s * 3 + 1
              retry = tonumber(redis.call('ZRANGE', req, requests - rpm, requests - rpm, 'WITHSCORES')[2]) + window - now
            elseif tpm > 0 and tokens >= tpm then
              code = s * 3 + 2
              local entries = redis.call('ZRANGE', tok, 0, -1, 'WITHSCORES')
              local left = tokens
              for i = 1, #entries, 2 do
                left = left - tonumber(string.match(entries[i], '^%d+'))
                if left < tpm then
                  retry = tonumber(entries[i + 1]) + window - now
                  break
                end
              end
            elseif maxpar > 0 then
              redis.call('ZREMRANGEBYSCORE', par, '-inf', now - lease)
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
            redis.call('ZADD', KEYS[s * 4 + 1], now, member)
            redis.call('PEXPIRE', KEYS[s * 4 + 1], window)
            if tonumber(ARGV[s * 3 + 6]) > 0 then
              redis.call('ZADD', KEYS[s * 4 + 4], now, member)
              redis.call('PEXPIRE', KEYS[s * 4 + 4], lease)
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
    // KEYS: three per subject of each call in turn (tokens, token sum, in flight).
    // ARGV: window ms, then per call: its number of subjects, its tokens, its request member.
    private const string RecordScript = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local window = tonumber(ARGV[1])
        local k = 0
        for a = 2, #ARGV, 3 do
          local tokens = tonumber(ARGV[a + 1])
          local member = ARGV[a + 2]
          for s = 1, tonumber(ARGV[a]) do
            local tok, sum, par = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
            if tokens > 0 then
              redis.call('ZADD', tok, now, ARGV[a + 1] .. ':' .. member)
              redis.call('INCRBY', sum, tokens)
              redis.call('PEXPIRE', tok, window)
              redis.call('PEXPIRE', sum, window)
            end
            redis.call('ZREM', par, member)
            k = k + 3
          end
        end
        return 1
        """;

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
            keys[i * 4] = subject.Key + ":req";
            keys[i * 4 + 1] = subject.Key + ":tok";
            keys[i * 4 + 2] = subject.Key + ":toksum";
            keys[i * 4 + 3] = subject.Key + ":par";
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
        var keys = new List<RedisKey>(records.Count * 3);
        var args = new RedisValue[1 + records.Count * 3];
        args[0] = (long)_options.Window.TotalMilliseconds;
        for (var r = 0; r < records.Count; r++)
        {
            var record = records[r];
            foreach (var subject in record.Subjects)
            {
                keys.Add(subject.Key + ":tok");
                keys.Add(subject.Key + ":toksum");
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
