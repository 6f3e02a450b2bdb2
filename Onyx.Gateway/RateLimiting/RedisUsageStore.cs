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

    // Budgets, shared by the admission and record scripts (they need `now`, `nowArg`, `lease` and `int`). A key's budget
    // is a hash (spend, reserved, reset_at, and m:<alias>:spend|reserved|reset_at for its model budgets) and a sorted
    // set of reservations, "<call>|<amount>|<alias or empty>" scored by when their replica last renewed them. A
    // reservation not renewed within the lease (its replica died) gives its amount back when the budget is next loaded.
    // Windows run on the gateway's clock (the ARGV `nowMs`): a window with no end yet gets one and keeps its spend (a
    // duration just added); a window whose end has passed starts again from 0.
    private const string BudgetFunctions = """
        local leaseEdge = int(now - lease)
        local budgets, budgetList = {}, {}
        local function modelOf(b, alias)
          local m = b.models[alias]
          if m then return m end
          local p = 'm:' .. alias .. ':'
          local v = redis.call('HMGET', b.h, p .. 'spend', p .. 'reserved', p .. 'reset_at')
          m = {p = p, spend = tonumber(v[1] or '0'), reserved = tonumber(v[2] or '0'), resetAt = tonumber(v[3] or '0')}
          b.models[alias] = m
          b.modelList[#b.modelList + 1] = m
          return m
        end
        local function reservation(r)
          local amount, alias = string.match(r, '^[^|]*|(%d+)|(.*)$')
          return tonumber(amount), alias
        end
        local function unreserve(b, r)
          local amount, alias = reservation(r)
          b.reserved = b.reserved - amount
          if alias ~= '' then local m = modelOf(b, alias); m.reserved = m.reserved - amount end
          b.dirty = true
        end
        local function loadBudget(k)
          local b = budgets[KEYS[k]]
          if b then return b end
          local v = redis.call('HMGET', KEYS[k], 'spend', 'reserved', 'reset_at')
          b = {h = KEYS[k], res = KEYS[k + 1], spend = tonumber(v[1] or '0'), reserved = tonumber(v[2] or '0'),
            resetAt = tonumber(v[3] or '0'), models = {}, modelList = {}}
          budgets[b.h] = b
          budgetList[#budgetList + 1] = b
          local gone = redis.call('ZRANGE', b.res, '-inf', leaseEdge, 'BYSCORE', 'LIMIT', '0', '1000')
          if #gone > 0 then
            for _, r in ipairs(gone) do unreserve(b, r) end
            redis.call('ZREM', b.res, unpack(gone))
          end
          return b
        end
        local function roll(b, s, nowMs, nextReset)
          if nextReset > 0 then
            if s.resetAt == 0 then s.resetAt = nextReset; b.dirty = true
            elseif nowMs >= s.resetAt then s.spend = 0; s.resetAt = nextReset; b.dirty = true end
          elseif s.resetAt ~= 0 then s.resetAt = 0; b.dirty = true end
        end
        local function saveBudgets()
          for _, b in ipairs(budgetList) do
            if b.added then
              local args = {'ZADD', b.res}
              for _, r in ipairs(b.added) do args[#args + 1] = nowArg; args[#args + 1] = r end
              redis.call(unpack(args))
            end
            if b.dirty then
              local args = {'HSET', b.h, 'spend', int(b.spend), 'reserved', int(math.max(0, b.reserved)), 'reset_at', int(b.resetAt)}
              for _, m in ipairs(b.modelList) do
                args[#args + 1] = m.p .. 'spend'; args[#args + 1] = int(m.spend)
                args[#args + 1] = m.p .. 'reserved'; args[#args + 1] = int(math.max(0, m.reserved))
                args[#args + 1] = m.p .. 'reset_at'; args[#args + 1] = int(m.resetAt)
              end
              redis.call(unpack(args))
            end
          end
        end
        """;

    // Any number of admissions of one user, in the order they came (their keys share the user's hash slot).
    // KEYS: per admission, four per subject in turn (requests, tokens, token total, in flight), then, when it has a
    // budget, the key's budget hash and reservations.
    // ARGV: window ms, lease ms, then per admission: its number of subjects, its request member, 1 if it has a budget,
    // then per subject: rpm, tpm, max parallel (0 = none); then, with a budget: the gateway's now (ms), max budget
    // (-1 = none), the end of a key window starting now (0 = none), the alias, the alias's budget (-1 = none), the end of
    // its window starting now, the estimate to reserve.
    // Returns per admission: refusal code (0 admitted, -1 the key's budget, -2 the alias's budget, else subject * 3 +
    // limit + 1), retry ms, then per subject: requests, ms until the oldest leaves, tokens, ms until the oldest tokens
    // leave; then, with a budget: spend, reserved, window end, the alias's spend, reserved and window end.
    // A budget is checked before the rate limits, and spend plus reservations must be below it: every call in flight
    // holds an estimate no smaller than its cost, so the key's spend passes its budget by at most the last admitted
    // call's cost, however many replicas admit at once.
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
        """ + "\n" + BudgetFunctions + "\n" + """
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
            redis.call('ZREMRANGEBYSCORE', s.par, '-inf', leaseEdge)
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
          local n, member, hasBudget = tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2] == '1'
          local s0 = a + 3
          local code, retry = 0, 0
          local b, m, alias, estimate
          if hasBudget then
            local p = s0 + n * 3
            local nowMs, max, keyReset, modelMax, modelReset = tonumber(ARGV[p]), tonumber(ARGV[p + 1]), tonumber(ARGV[p + 2]), tonumber(ARGV[p + 4]), tonumber(ARGV[p + 5])
            alias, estimate = ARGV[p + 3], tonumber(ARGV[p + 6])
            b = loadBudget(k + n * 4)
            roll(b, b, nowMs, keyReset)
            if modelMax >= 0 then m = modelOf(b, alias); roll(b, m, nowMs, modelReset) end
            if max >= 0 and b.spend + math.max(0, b.reserved) >= max then code = -1
            elseif m and m.spend + math.max(0, m.reserved) >= modelMax then code = -2 end
          end
          if code == 0 then
            for i = 0, n - 1 do
              local s = load(k + i * 4)
              local rpm, tpm, maxpar = tonumber(ARGV[s0 + i * 3]), tonumber(ARGV[s0 + 1 + i * 3]), tonumber(ARGV[s0 + 2 + i * 3])
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
          end
          out[#out + 1] = code
          out[#out + 1] = retry
          for i = 0, n - 1 do
            local s = load(k + i * 4)
            if code == 0 then
              s.requests = s.requests + 1
              if s.reqReset == 0 then s.reqReset = window end
              if s.added then s.added[#s.added + 1] = member else s.added = {member} end
              if tonumber(ARGV[s0 + 2 + i * 3]) > 0 then
                s.inFlight = s.inFlight + 1
                if s.parAdded then s.parAdded[#s.parAdded + 1] = member else s.parAdded = {member} end
              end
            end
            out[#out + 1] = s.requests
            out[#out + 1] = s.reqReset
            out[#out + 1] = s.tokens
            out[#out + 1] = s.tokReset
          end
          if hasBudget then
            if code == 0 then
              b.reserved = b.reserved + estimate
              if m then m.reserved = m.reserved + estimate end
              local r = member .. '|' .. int(estimate) .. '|' .. (m and alias or '')
              if b.added then b.added[#b.added + 1] = r else b.added = {r} end
              b.dirty = true
            end
            out[#out + 1] = b.spend
            out[#out + 1] = math.max(0, b.reserved)
            out[#out + 1] = b.resetAt
            out[#out + 1] = m and m.spend or 0
            out[#out + 1] = m and math.max(0, m.reserved) or 0
            out[#out + 1] = m and m.resetAt or 0
          end
          k = k + n * 4 + (hasBudget and 2 or 0)
          a = s0 + n * 3 + (hasBudget and 7 or 0)
        end
        for _, s in ipairs(touched) do
          flush(s)
          if s.expireReq then redis.call('PEXPIRE', s.req, ARGV[1]) end
          if s.expirePar then redis.call('PEXPIRE', s.par, ARGV[2]) end
        end
        saveBudgets()
        return out
        """;

    // Any number of finished calls of one user (their keys share the user's hash slot, so this runs on Redis Cluster).
    // KEYS: per call, four per subject in turn (requests, tokens, token total, in flight), then, when it settles a
    // cost, its key's budget hash and reservations and the user's settled calls.
    // ARGV: window ms, most expired entries to drop per set, lease ms, how long settled calls are remembered (ms), then
    // per call: its number of subjects, its tokens, its request member, 1 if it settles a cost; then, if so: the
    // gateway's now (ms), the cost, the reservation to release (or empty), the alias whose spend counts too (or
    // empty), the end of a key window starting now (0 = none), the same for the alias, the soft budget (-1 = none).
    // Returns per settled call: 1 if counted now (0: it had been, by an earlier try of the same write), 1 if it crossed
    // the soft budget, the key's spend after it. A key's spend only grows within a window, so a crossing is seen once.
    // The calls are grouped by subject, so each subject takes the same few redis.calls however many calls finished:
    // one INCRBY of the total by all their tokens (each entry's running total is counted on from the total before),
    // one ZADD of all their entries, one ZREM of all their requests in flight. Then it drops entries that have left
    // the window, at most `drop` per set: the oldest, by rank, as many as ZCOUNT finds older than the window.
    private const string RecordScript = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local lease = tonumber(ARGV[3])
        local function int(n) return string.format('%d', n) end
        local nowArg, edgeArg = int(now), int(now - tonumber(ARGV[1]))
        """ + "\n" + BudgetFunctions + "\n" + """
        local drop = tonumber(ARGV[2])
        local function trim(key, edge)
          local expired = redis.call('ZCOUNT', key, '-inf', edge)
          if expired > 0 then redis.call('ZREMRANGEBYRANK', key, '0', int(math.min(expired, drop) - 1)) end
        end
        local subjects, order, settles = {}, {}, {}
        local k, a = 0, 5
        while a <= #ARGV do
          local n, tokens, member, settle = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3] == '1'
          for s = 1, n do
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
          a = a + 4
          if settle then
            table.insert(settles, {k = k + 1, member = member, nowMs = tonumber(ARGV[a]), cost = tonumber(ARGV[a + 1]), reservation = ARGV[a + 2],
              alias = ARGV[a + 3], keyReset = tonumber(ARGV[a + 4]), modelReset = tonumber(ARGV[a + 5]), soft = tonumber(ARGV[a + 6])})
            k = k + 3
            a = a + 7
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
          trim(g.req, edgeArg)
          trim(g.tok, edgeArg)
        end
        local out, settled = {}, {}
        for _, s in ipairs(settles) do
          local b = loadBudget(s.k)
          local done = KEYS[s.k + 2]
          if redis.call('ZSCORE', done, s.member) then
            out[#out + 1] = 0
            out[#out + 1] = 0
          else
            redis.call('ZADD', done, int(s.nowMs), s.member)
            settled[done] = s.nowMs
            if s.reservation ~= '' and redis.call('ZREM', b.res, s.reservation) == 1 then unreserve(b, s.reservation) end
            roll(b, b, s.nowMs, s.keyReset)
            local before = b.spend
            b.spend = b.spend + s.cost
            if s.alias ~= '' then
              local m = modelOf(b, s.alias)
              roll(b, m, s.nowMs, s.modelReset)
              m.spend = m.spend + s.cost
            end
            b.dirty = true
            out[#out + 1] = 1
            out[#out + 1] = (s.soft >= 0 and before < s.soft and b.spend >= s.soft) and 1 or 0
          end
          out[#out + 1] = b.spend
        end
        for done, nowMs in pairs(settled) do trim(done, int(nowMs - tonumber(ARGV[4]))) end
        saveBudgets()
        return out
        """;

    // Calls still running keep their places: each in-flight entry and reservation named is scored now, if it is still
    // there (XX: one already freed is not brought back), and the in-flight sets live on for another lease.
    // KEYS: the in-flight sets, then the reservation sets. ARGV: lease ms, how many in-flight sets, then a member per key.
    private const string RenewScript = """
        local t = redis.call('TIME')
        local now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
        local sets = tonumber(ARGV[2])
        for i = 1, #KEYS do
          redis.call('ZADD', KEYS[i], 'XX', now, ARGV[i + 2])
          if i <= sets then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
        end
        return 1
        """;

    // Frees what an admission took that no call will finish: its in-flight entries, and its reservation (its amount given
    // back, once: only if the reservation was still there).
    // KEYS: the in-flight sets, then (optionally) the budget hash and its reservations. ARGV: how many in-flight sets,
    // the member, then (optionally) the reservation.
    private const string ReleaseScript = """
        local sets = tonumber(ARGV[1])
        for i = 1, sets do redis.call('ZREM', KEYS[i], ARGV[2]) end
        if #KEYS > sets and redis.call('ZREM', KEYS[sets + 2], ARGV[3]) == 1 then
          local amount, alias = string.match(ARGV[3], '^[^|]*|(%d+)|(.*)$')
          redis.call('HINCRBY', KEYS[sets + 1], 'reserved', '-' .. amount)
          if alias ~= '' then redis.call('HINCRBY', KEYS[sets + 1], 'm:' .. alias .. ':reserved', '-' .. amount) end
        end
        return 1
        """;

    private const string RequestsSuffix = ":req";
    // The token keys' names changed with their layout (entries once held only their own tokens, and the sum was
    // decremented): replicas of both versions during a rolling upgrade count tokens apart for at most one window
    // instead of misreading each other's entries.
    private const string TokensSuffix = ":tokens";
    private const string TokensTotalSuffix = ":tokens-total";
    internal const string InFlightSuffix = ":par";
    private const string ReservationsSuffix = ":res";

    /// <summary>
    /// How long a settled call is remembered, so that a write retried after its first try did land (its answer lost
    /// with the connection) counts once. Retries follow within seconds unless Redis then becomes unreachable; longer
    /// would cost Redis memory with every call (about 80 bytes each) for outages that start in that very moment.
    /// </summary>
    internal static readonly TimeSpan SettledMemory = TimeSpan.FromMinutes(15);

    private readonly RateLimitOptions _options = options.Value.RateLimits;
    private readonly ConcurrentQueue<PendingAdmission> _admissions = new();
    private int _admitting;

    /// <summary>A key's budget hash (its reservations: this and <c>:res</c>), under its user's hash tag.</summary>
    public static string BudgetKey(string userKey, string keyHash) => $"{userKey}:budget:{keyHash}";

    /// <summary>The calls of a user whose cost has been settled (to count each once).</summary>
    public static string SettledKey(string userKey) => userKey + ":settled";

    public Task<Admission> AdmitAsync(IReadOnlyList<LimitSubject> subjects, string member, CancellationToken cancellationToken) =>
        AdmitAsync(new AdmissionRequest(subjects[0].UserKey, subjects, member), cancellationToken);

    /// <summary>
    /// Counts the request in Redis. With no admission script in flight it goes at once, alone; admissions that
    /// arrive while one is in flight wait for it and then go together, one script per user. Under load Redis then
    /// runs one script, and reads each window once, for several requests; with few requests nothing waits.
    /// </summary>
    public Task<Admission> AdmitAsync(AdmissionRequest request, CancellationToken cancellationToken)
    {
        var admission = new PendingAdmission(request, Environment.TickCount64, cancellationToken);
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
            return Read((long[])(await EvaluateAsync([admission]))!, ref at, admission.Request);
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
                    // Its client has gone: counted, it would hold a parallel slot and a reservation nobody would free.
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
        var user = batch[0].Request.UserKey;
        var oneUser = true;
        for (var i = 1; i < batch.Count && oneUser; i++)
        {
            oneUser = batch[i].Request.UserKey == user;
        }
        return oneUser
            ? CompleteAsync(batch)
            : Task.WhenAll(batch.GroupBy(p => p.Request.UserKey, StringComparer.Ordinal).Select(group => CompleteAsync(group.ToList())));
    }

    /// <summary>Admissions of one user in one script; completes each of them, whatever happens.</summary>
    private async Task CompleteAsync(List<PendingAdmission> admissions)
    {
        try
        {
            var result = (long[])(await EvaluateAsync(admissions))!;
            var at = 0;
            foreach (var admission in admissions)
            {
                admission.TrySetResult(Read(result, ref at, admission.Request));
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
        var keys = new List<RedisKey>();
        var args = new List<RedisValue>
        {
            (long)_options.Window.TotalMilliseconds,
            (long)_options.ParallelLease.TotalMilliseconds,
        };
        foreach (var pending in admissions)
        {
            var admission = pending.Request;
            var budget = admission.Budget;
            args.Add(admission.Subjects.Count);
            args.Add(admission.Member);
            args.Add(budget is null ? 0 : 1);
            foreach (var subject in admission.Subjects)
            {
                keys.Add(subject.Key + RequestsSuffix);
                keys.Add(subject.Key + TokensSuffix);
                keys.Add(subject.Key + TokensTotalSuffix);
                keys.Add(subject.Key + InFlightSuffix);
                args.Add(subject.Rpm);
                args.Add(subject.Tpm);
                args.Add(subject.MaxParallel);
            }
            if (budget is not null)
            {
                var key = BudgetKey(admission.UserKey, budget.KeyHash);
                keys.Add(key);
                keys.Add(key + ReservationsSuffix);
                args.Add(budget.Now);
                args.Add(budget.MaxBudget ?? -1);
                args.Add(budget.KeyNextReset);
                args.Add(budget.Alias);
                args.Add(budget.ModelMaxBudget ?? -1);
                args.Add(budget.ModelNextReset);
                args.Add(budget.Estimate);
            }
        }
        return redis.GetDatabase().ScriptEvaluateAsync(AdmitScript, [.. keys], [.. args]);
    }

    private static Admission Read(long[] result, ref int at, AdmissionRequest request)
    {
        var code = result[at];
        var retry = TimeSpan.FromMilliseconds(result[at + 1]);
        var subjects = request.Subjects.Count;
        var usage = new SubjectUsage[subjects];
        for (var i = 0; i < usage.Length; i++)
        {
            var u = at + 2 + i * 4;
            usage[i] = new SubjectUsage(result[u], TimeSpan.FromMilliseconds(result[u + 1]), result[u + 2], TimeSpan.FromMilliseconds(result[u + 3]));
        }
        at += 2 + subjects * 4;
        BudgetUsage? budget = null;
        if (request.Budget is not null)
        {
            budget = new BudgetUsage(result[at], result[at + 1], result[at + 2], result[at + 3], result[at + 4], result[at + 5]);
            at += 6;
        }
        var admission = code switch
        {
            0 => Admission.Admit(usage),
            -1 => Admission.Refuse(-1, LimitKind.Budget, TimeSpan.Zero, usage),
            -2 => Admission.Refuse(-1, LimitKind.ModelBudget, TimeSpan.Zero, usage),
            _ => Admission.Refuse((int)((code - 1) / 3), (LimitKind)((code - 1) % 3), retry, usage),
        };
        return admission with { Budget = budget };
    }

    /// <summary>An admission for a script; one that waits for its turn is awaited by <see cref="TaskCompletionSource{TResult}.Task"/>.</summary>
    private sealed class PendingAdmission(AdmissionRequest request, long queued, CancellationToken cancelled)
        : TaskCompletionSource<Admission>(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        /// <summary>The request's own token: a queued admission whose client has gone is not sent.</summary>
        public CancellationToken Cancelled { get; } = cancelled;

        public AdmissionRequest Request { get; } = request;

        /// <summary>When it was queued (<see cref="Environment.TickCount64"/>).</summary>
        public long Queued { get; } = queued;
    }

    /// <summary>Records finished calls in one script. They must share one user (one hash slot): see <see cref="UsageLimiter"/>.</summary>
    public async Task<IReadOnlyList<SettleResult>> RecordAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken)
    {
        var keys = new List<RedisKey>(records.Count * 4);
        var args = new List<RedisValue>(4 + records.Count * 4)
        {
            (long)_options.Window.TotalMilliseconds,
            MaxExpiredDroppedPerRecord,
            (long)_options.ParallelLease.TotalMilliseconds,
            (long)SettledMemory.TotalMilliseconds,
        };
        var settles = 0;
        foreach (var record in records)
        {
            foreach (var subject in record.Subjects)
            {
                keys.Add(subject.Key + RequestsSuffix);
                keys.Add(subject.Key + TokensSuffix);
                keys.Add(subject.Key + TokensTotalSuffix);
                keys.Add(subject.Key + InFlightSuffix);
            }
            args.Add(record.Subjects.Count);
            args.Add(record.Tokens);
            args.Add(record.Member);
            var settle = record.Settlement;
            args.Add(settle is null ? 0 : 1);
            if (settle is not null)
            {
                settles++;
                var key = BudgetKey(record.UserKey, settle.KeyHash);
                keys.Add(key);
                keys.Add(key + ReservationsSuffix);
                keys.Add(SettledKey(record.UserKey));
                args.Add(settle.Now);
                args.Add(settle.Cost);
                args.Add(settle.Reservation ?? "");
                args.Add(settle.ModelAlias ?? "");
                args.Add(settle.KeyNextReset);
                args.Add(settle.ModelNextReset);
                args.Add(settle.SoftBudget);
            }
        }
        var result = (long[])(await redis.GetDatabase().ScriptEvaluateAsync(RecordScript, [.. keys], [.. args]).WaitAsync(cancellationToken))!;
        var outcomes = new SettleResult[settles];
        for (var i = 0; i < settles; i++)
        {
            outcomes[i] = new SettleResult(result[i * 3] == 1, result[i * 3 + 1] == 1, result[i * 3 + 2]);
        }
        return outcomes;
    }

    /// <summary>Renews the leases of calls of one user that are still running (their in-flight entries and reservations).</summary>
    public Task RenewAsync(IReadOnlyList<RateLimitLease> leases)
    {
        var sets = new List<(RedisKey Key, RedisValue Member)>();
        var reservations = new List<(RedisKey Key, RedisValue Member)>();
        foreach (var lease in leases)
        {
            foreach (var subject in lease.Subjects)
            {
                if (subject.MaxParallel > 0)
                {
                    sets.Add((subject.Key + InFlightSuffix, lease.Member));
                }
            }
            if (lease.Reservation is { } reservation)
            {
                reservations.Add((BudgetKey(lease.UserKey, lease.KeyHash!) + ReservationsSuffix, reservation));
            }
        }
        if (sets.Count + reservations.Count == 0)
        {
            return Task.CompletedTask;
        }
        RedisValue[] args = [(long)_options.ParallelLease.TotalMilliseconds, sets.Count, .. sets.Select(s => s.Member), .. reservations.Select(r => r.Member)];
        return redis.GetDatabase().ScriptEvaluateAsync(RenewScript, [.. sets.Select(s => s.Key), .. reservations.Select(r => r.Key)], args);
    }

    /// <summary>Frees the in-flight entries and reservation of a call that will not be recorded in Redis.</summary>
    public Task ReleaseAsync(string userKey, IReadOnlyList<LimitSubject> subjects, string member, string? keyHash, string? reservation)
    {
        var keys = subjects.Where(s => s.MaxParallel > 0).Select(s => (RedisKey)(s.Key + InFlightSuffix)).ToList();
        var args = new List<RedisValue> { keys.Count, member };
        if (keyHash is not null && reservation is not null)
        {
            var budget = BudgetKey(userKey, keyHash);
            keys.Add(budget);
            keys.Add(budget + ReservationsSuffix);
            args.Add(reservation);
        }
        return keys.Count == 0 ? Task.CompletedTask : redis.GetDatabase().ScriptEvaluateAsync(ReleaseScript, [.. keys], [.. args]);
    }

    /// <summary>A key's budget as Redis holds it (no window is rolled over here: the caller reads an ended one as empty).</summary>
    public async Task<BudgetState> ReadBudgetAsync(string userKey, string keyHash, CancellationToken cancellationToken)
    {
        var entries = await redis.GetDatabase().HashGetAllAsync(BudgetKey(userKey, keyHash)).WaitAsync(cancellationToken);
        return BudgetState.Parse(entries.Select(e => ((string)e.Name!, (long)e.Value)));
    }

    /// <summary>
    /// Forgets when the key's windows end (its durations changed): the next admission starts them again from its
    /// clock, keeping what was spent.
    /// </summary>
    public async Task ResetWindowsAsync(string userKey, string keyHash, IEnumerable<string> aliases, CancellationToken cancellationToken)
    {
        RedisValue[] fields = ["reset_at", .. aliases.Select(a => (RedisValue)$"m:{a}:reset_at")];
        await redis.GetDatabase().HashDeleteAsync(BudgetKey(userKey, keyHash), fields).WaitAsync(cancellationToken);
    }

    /// <summary>Drops a deleted key's budget.</summary>
    public async Task DeleteBudgetAsync(string userKey, string keyHash, CancellationToken cancellationToken)
    {
        var key = BudgetKey(userKey, keyHash);
        await redis.GetDatabase().KeyDeleteAsync([key, key + ReservationsSuffix]).WaitAsync(cancellationToken);
    }

    /// <summary>Whether Redis answers now (the limiter's way back from its fallback).</summary>
    public Task PingAsync() => redis.GetDatabase().PingAsync();
}
