using System.Text.Json;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Onyx.Gateway.Audit;

/// <summary>
/// The audit trail in a Redis stream (<see cref="AuditOptions.StreamKey"/>), one entry per record with the fields
/// <c>id</c>, <c>user</c> and <c>record</c> (the record's JSON). Writing is idempotent per record: beside the stream a
/// sorted set (<c>&lt;stream&gt;:ids</c>) remembers each written record's id for <see cref="AuditOptions.DedupeWindow"/>
/// (and never more ids than the stream keeps records, so the set stays as bounded as the stream),
/// and one Lua script adds to the stream only the records whose id is new — so a batch replayed after a write whose
/// answer was lost (a timeout, a connection cut mid-reply) adds nothing twice, whichever replica replays it.
/// </summary>
internal sealed class RedisAuditStream(IConnectionMultiplexer redis, IOptions<AuditOptions> options, TimeProvider time)
{
    // KEYS[1] stream, KEYS[2] id set. ARGV: max length (0: none), min id for age trimming ('': none), now (ms),
    // forget ids remembered before (ms), then id, user, record for each record. Returns how many were added.
    // An id's score is its time in ms, made unique and increasing in the order the records enter the stream (one
    // microsecond past the newest score when the clock has not moved on): trimming the set by rank then drops the
    // same oldest records the stream drops. With equal scores, Redis would rank ids made in the same millisecond by
    // their random part instead. Scores count whole microseconds, exact in a double, written out with three decimals.
    private const string AddScript = """
        redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4])
        local score = tonumber(ARGV[3]) * 1000
        local newest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
        if newest[2] then
          local top = math.floor(tonumber(newest[2]) * 1000 + 0.5)
          if top >= score then
            score = top + 1
          end
        end
        local added = 0
        for i = 5, #ARGV, 3 do
          if redis.call('ZADD', KEYS[2], 'NX', string.format('%.3f', score / 1000), ARGV[i]) == 1 then
            score = score + 1
            if ARGV[1] ~= '0' then
              redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'id', ARGV[i], 'user', ARGV[i + 1], 'record', ARGV[i + 2])
            else
              redis.call('XADD', KEYS[1], '*', 'id', ARGV[i], 'user', ARGV[i + 1], 'record', ARGV[i + 2])
            end
            added = added + 1
          end
        end
        if ARGV[2] ~= '' then
          redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[2])
        end
        if ARGV[1] ~= '0' then
          -- An id need not outlive the records the stream can still hold: keep at most as many as it does.
          redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[1]) + 1))
        end
        return added
        """;

    /// <summary>How far a record's time may lie before its stream id (clock skew between a replica and Redis).</summary>
    private static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(5);

    private readonly AuditOptions _options = options.Value;
    private readonly RedisKey[] _keys = [options.Value.StreamKey, options.Value.StreamKey + ":ids"];

    /// <summary>Writes the records in one round trip; returns how many were new (the rest Redis already had).</summary>
    /// <exception cref="RedisException">Redis is unreachable or failed.</exception>
    /// <exception cref="TimeoutException">No answer within <paramref name="timeout"/>.</exception>
    public async Task<int> AddAsync(IReadOnlyList<AuditRecord> records, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var args = new RedisValue[4 + records.Count * 3];
        args[0] = _options.MaxLength;
        args[1] = _options.MaxAge is { } age && age > TimeSpan.Zero ? $"{(now - age).ToUnixTimeMilliseconds()}-0" : "";
        args[2] = now.ToUnixTimeMilliseconds();
        args[3] = (now - _options.DedupeWindow).ToUnixTimeMilliseconds();
        for (var i = 0; i < records.Count; i++)
        {
            var record = records[i];
            args[4 + i * 3] = record.AuditId;
            args[5 + i * 3] = record.UserId ?? "";
            args[6 + i * 3] = JsonSerializer.SerializeToUtf8Bytes(record, AuditJsonContext.Default.AuditRecord);
        }
        var result = await redis.GetDatabase().ScriptEvaluateAsync(AddScript, _keys, args)
            .WaitAsync(timeout, time, cancellationToken);
        return (int)result;
    }

    /// <summary>
    /// Newest first: the records written before <paramref name="cursor"/> (an entry id, exclusive; from the newest if
    /// null), of <paramref name="user"/> (any if null), whose time is within [since, until]. Reads at most
    /// <paramref name="scanLimit"/> entries; a page that stops there has fewer records and a cursor to go on.
    /// </summary>
    public async Task<AuditPage> ReadAsync(string? user, DateTimeOffset? since, DateTimeOffset? until, int limit, string? cursor, int scanLimit)
    {
        var read = await ReadAsync(new AuditQuery { User = user, Since = since, Until = until }, limit, cursor, scanLimit);
        return new AuditPage([.. read.Entries.Select(e => e.Record)], read.HasMore, read.NextCursor);
    }

    /// <summary>
    /// Newest first: the records written before <paramref name="cursor"/> (an entry id, exclusive; from the newest if
    /// null) that <paramref name="query"/> matches, at most <paramref name="limit"/>. Reads at most
    /// <paramref name="scanLimit"/> entries; a read that stops there has fewer records and a cursor to go on.
    /// </summary>
    public async Task<AuditEntries> ReadAsync(AuditQuery query, int limit, string? cursor, int scanLimit)
    {
        var database = redis.GetDatabase();
        var records = new List<AuditEntry>(Math.Min(limit, 1024));
        // Entry ids are the Redis time of writing, never much before the record's own time: nothing older than
        // since (less the skew allowance) can match. A record replayed late has a later id than its time, so until
        // cannot bound the read, only filter it.
        RedisValue oldest = query.Since is { } from ? $"{Math.Max(0, (from - ClockSkew).ToUnixTimeMilliseconds())}-0" : "-";
        RedisValue newest = cursor is null ? "+" : "(" + cursor;
        string? lastScanned = null, lastAdded = null;
        var scanned = 0;
        while (scanned < scanLimit)
        {
            var count = Math.Min(Math.Max(limit + 1 - records.Count, 64), scanLimit - scanned);
            var entries = await database.StreamRangeAsync(_keys[0], oldest, newest, count, Order.Descending);
            foreach (var entry in entries)
            {
                scanned++;
                var id = entry.Id.ToString();
                if ((query.User is null || entry["user"] == query.User) && Parse(entry["record"]) is { } record && query.Matches(record))
                {
                    if (records.Count == limit)
                    {
                        // One more match beyond this page: the next page starts after the page's last record.
                        return new AuditEntries(records, true, lastAdded, false);
                    }
                    records.Add(new AuditEntry(id, record));
                    lastAdded = id;
                }
                lastScanned = id;
            }
            if (entries.Length < count)
            {
                return new AuditEntries(records, false, null, false);
            }
            newest = "(" + lastScanned;
        }
        // The scan limit was reached before the page was full: what was found, and where to go on.
        return new AuditEntries(records, true, lastScanned, true);
    }

    /// <summary>The record of one stream entry; null when the stream no longer holds it (trimmed) or never did.</summary>
    public async Task<AuditRecord?> FindAsync(string entryId)
    {
        var entries = await redis.GetDatabase().StreamRangeAsync(_keys[0], entryId, entryId, 1);
        return entries.Length == 1 ? Parse(entries[0]["record"]) : null;
    }

    private static AuditRecord? Parse(RedisValue json)
    {
        if (json.IsNullOrEmpty)
        {
            return null;
        }
        try
        {
            return JsonSerializer.Deserialize((byte[])json!, AuditJsonContext.Default.AuditRecord);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
