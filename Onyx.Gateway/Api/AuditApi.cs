using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Onyx.Gateway.Audit;
using Onyx.Gateway.Auth;
using Onyx.Gateway.OpenAi;
using StackExchange.Redis;

namespace Onyx.Gateway.Api;

/// <summary><c>GET /audit?user=&amp;since=&amp;until=&amp;limit=&amp;cursor=</c>: the audit trail, newest first, for the master key.</summary>
internal static partial class AuditApi
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 1000;

    /// <summary>The most stream entries one page reads while filtering; past it the page ends early, with a cursor.</summary>
    public const int ScanLimit = 10_000;

    public static IEndpointRouteBuilder MapAuditApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/audit", Read).RequireAuthorization(AuthExtensions.AdminPolicy);
        return app;
    }

    internal static async Task<Results<FileContentHttpResult, OpenAiErrorResult>> Read(HttpContext context, IServiceProvider services)
    {
        var query = context.Request.Query;
        string? user = query["user"];
        if (user is { Length: 0 or > 256 })
        {
            return Invalid("'user' must be a non-empty user id of at most 256 characters.", "user");
        }
        if (!TryParseTime(query["since"], out var since))
        {
            return Invalid("'since' must be an ISO 8601 time (2026-11-26T12:00:00Z) or unix seconds.", "since");
        }
        if (!TryParseTime(query["until"], out var until))
        {
            return Invalid("'until' must be an ISO 8601 time (2026-11-26T12:00:00Z) or unix seconds.", "until");
        }
        if (since > until)
        {
            return Invalid("'since' must not be later than 'until'.", "since");
        }
        var limit = DefaultLimit;
        if (query["limit"].ToString() is { Length: > 0 } text && (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit is < 1 or > MaxLimit))
        {
            return Invalid($"'limit' must be a whole number from 1 to {MaxLimit}.", "limit");
        }
        string? cursor = query["cursor"];
        if (cursor is not null && !StreamId().IsMatch(cursor))
        {
            return Invalid("'cursor' must be the 'next_cursor' of a previous page.", "cursor");
        }

        if (services.GetService<RedisAuditStream>() is not { } stream)
        {
            return Unavailable("The audit trail is read from Redis, and this gateway has none (ConnectionStrings:redis); its records are in its local audit file (Onyx:Audit:File:Directory).");
        }
        AuditPage page;
        try
        {
            page = await stream.ReadAsync(user, since, until, limit, cursor, ScanLimit);
        }
        catch (RedisException)
        {
            return Unavailable("Redis, which holds the audit trail, is unreachable; records written meanwhile are kept and replayed.");
        }
        return TypedResults.Bytes(JsonSerializer.SerializeToUtf8Bytes(page, AuditJsonContext.Default.AuditPage), "application/json");
    }

    private static bool TryParseTime(string? text, out DateTimeOffset? time)
    {
        time = null;
        if (string.IsNullOrEmpty(text))
        {
            return true;
        }
        if (double.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var seconds))
        {
            if (seconds > 253_402_300_799)
            {
                return false;
            }
            time = DateTimeOffset.FromUnixTimeMilliseconds((long)(seconds * 1000));
            return true;
        }
        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed))
        {
            time = parsed;
            return true;
        }
        return false;
    }

    private static OpenAiErrorResult Invalid(string message, string param) =>
        new(StatusCodes.Status400BadRequest, new OpenAiError(message, OpenAiErrorTypes.InvalidRequest, param, "invalid_parameter"));

    private static OpenAiErrorResult Unavailable(string message) =>
        new(StatusCodes.Status503ServiceUnavailable, new OpenAiError(message, OpenAiErrorTypes.ServiceUnavailable, null, "audit_store_unavailable"));

    [System.Text.RegularExpressions.GeneratedRegex("^[0-9]{1,20}-[0-9]{1,20}$")]
    private static partial System.Text.RegularExpressions.Regex StreamId();
}
