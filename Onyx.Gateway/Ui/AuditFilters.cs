using System.Globalization;
using System.Text.RegularExpressions;
using Onyx.Gateway.Audit;

namespace Onyx.Gateway.Ui;

/// <summary>The Audit page's query string as an <see cref="AuditQuery"/>; a value that cannot be one is named in the error.</summary>
internal static partial class AuditFilters
{
    public static bool Parse(string? key, string? user, string? alias, string? status, string? fallback, string? resumed, string? since, string? until,
        string? requestId, string? cursor, out AuditQuery query, out string? error)
    {
        query = AuditQuery.All;
        error = null;
        int? statusCode = null;
        if (!string.IsNullOrWhiteSpace(status))
        {
            if (!int.TryParse(status, NumberStyles.None, CultureInfo.InvariantCulture, out var code) || code is < 100 or > 599)
            {
                error = "Status must be an HTTP status code (100–599).";
                return false;
            }
            statusCode = code;
        }
        if (!TryTime(since, out var from) || !TryTime(until, out var to))
        {
            error = "From and until must be times (UTC), like 2026-11-26T12:00:00.";
            return false;
        }
        if (cursor is not null && !StreamId().IsMatch(cursor))
        {
            error = "That page link is not valid: start again from the newest records.";
            return false;
        }
        query = new AuditQuery
        {
            KeyName = Blank(key),
            User = Blank(user),
            Alias = Blank(alias),
            Status = statusCode,
            Fallback = YesNo(fallback),
            Resumed = YesNo(resumed),
            RequestId = Blank(requestId),
            Since = from,
            Until = to,
        };
        return true;
    }

    private static string? Blank(string? text) => string.IsNullOrWhiteSpace(text) ? null : text.Trim();

    private static bool? YesNo(string? text) => text switch { "yes" => true, "no" => false, _ => null };

    private static bool TryTime(string? text, out DateTimeOffset? time)
    {
        time = null;
        if (string.IsNullOrWhiteSpace(text))
        {
            return true;
        }
        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var parsed))
        {
            time = parsed;
            return true;
        }
        return false;
    }

    [GeneratedRegex("^[0-9]{1,20}-[0-9]{1,20}$")]
    public static partial Regex StreamId();
}
