using Onyx.Gateway.Audit;
using StackExchange.Redis;

namespace Onyx.Gateway.Ui;

/// <summary>
/// The console's reads of the audit trail, through the same <see cref="RedisAuditStream"/> as <c>GET /audit</c>: one page
/// of records, or every record of a window up to <see cref="WindowReadLimit"/>, which bounds what one page view costs
/// Redis and the gateway whatever the traffic.
/// </summary>
internal sealed class ConsoleAudit(IServiceProvider services)
{
    /// <summary>The most records a window's figures are computed from (the newest ones); the page says when it is reached.</summary>
    public const int WindowReadLimit = 20_000;

    /// <summary>The most stream entries one page of the Audit page reads while filtering, as <c>GET /audit</c>.</summary>
    public const int PageScanLimit = 10_000;

    private readonly RedisAuditStream? _stream = services.GetService<RedisAuditStream>();

    /// <summary>Whether the audit trail can be read here at all: it is read from Redis, and a gateway without Redis has none.</summary>
    public bool Available => _stream is not null;

    public const string NoRedis = "The audit trail is read from Redis, and this gateway has none (ConnectionStrings:redis): its records are in its local audit file.";

    public const string RedisDown = "Redis, which holds the audit trail, is unreachable; the records written meanwhile are kept and replayed.";

    /// <summary>Every record of the window that <paramref name="query"/> matches, newest first, at most <see cref="WindowReadLimit"/>.</summary>
    public async Task<WindowRead> ReadWindowAsync(AuditQuery query)
    {
        if (_stream is null)
        {
            return new WindowRead([], false, NoRedis);
        }
        try
        {
            var read = await _stream.ReadAsync(query, WindowReadLimit, null, WindowReadLimit * 2);
            return new WindowRead([.. read.Entries.Select(e => e.Record)], read.HasMore, null);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return new WindowRead([], false, RedisDown);
        }
    }

    public async Task<(AuditEntries? Page, string? Problem)> ReadPageAsync(AuditQuery query, int limit, string? cursor)
    {
        if (_stream is null)
        {
            return (null, NoRedis);
        }
        try
        {
            return (await _stream.ReadAsync(query, limit, cursor, PageScanLimit), null);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return (null, RedisDown);
        }
    }

    public async Task<(AuditRecord? Record, string? Problem)> FindAsync(string entryId)
    {
        if (_stream is null)
        {
            return (null, NoRedis);
        }
        try
        {
            return (await _stream.FindAsync(entryId), null);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return (null, RedisDown);
        }
    }
}

/// <summary>A window's records; <see cref="Truncated"/>: the window held more than the read bound, and these are its newest.</summary>
internal sealed record WindowRead(IReadOnlyList<AuditRecord> Records, bool Truncated, string? Problem);
