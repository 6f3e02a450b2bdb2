using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Api;
using Onyx.Gateway.Audit;
using Onyx.Gateway.Auth;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Model;
using Onyx.Gateway.RateLimiting;
using Onyx.Gateway.Routing;

namespace Onyx.Gateway.Ui;

/// <summary>
/// What the playground's script calls. <c>POST /ui/playground/chat</c> is <c>/v1/chat/completions</c> itself (the same
/// handler: validation, limits, budget, routing, audit) run as the master key or as a generated key the admin picks,
/// so the browser never holds a key: the page's script sends no <c>Authorization</c>, only the console's cookie, which
/// works here only with the page's antiforgery token in a header and from the console's own origin — another site
/// can neither read the token nor make the browser send the cookie (SameSite=Strict, path /ui).
/// <c>GET /ui/playground/record</c> gives the call's audit record once written.
/// </summary>
internal static class PlaygroundApi
{
    public const string AntiforgeryHeader = "X-Onyx-Antiforgery";

    public static IEndpointRouteBuilder MapPlaygroundApi(this IEndpointRouteBuilder app)
    {
        var playground = app.MapGroup(ConsoleAccess.Path + "/playground").RequireAuthorization(ConsoleAccess.Policy);
        playground.MapPost("/chat", ChatAsync);
        playground.MapGet("/record", RecordAsync);
        return app;
    }

    internal static async Task<IResult> ChatAsync(HttpContext context, IAntiforgery antiforgery, KeyRegistry keys, ChatCompletionRouter router,
        RoutingTable routing, UsageLimiter limiter, AuditWriter audit, IOptions<OnyxOptions> options, TimeProvider time, string? key)
    {
        if (!SameOrigin(context.Request))
        {
            return TypedResults.Problem("The playground answers pages of this console only.", statusCode: StatusCodes.Status403Forbidden);
        }
        if (!await antiforgery.IsRequestValidAsync(context))
        {
            return TypedResults.Problem("The page's antiforgery token is missing or stale: reload the playground.", statusCode: StatusCodes.Status400BadRequest);
        }
        var caller = Caller.Master;
        if (!string.IsNullOrEmpty(key))
        {
            if (!ApiKeys.IsHash(key) || await keys.FindAsync(key, context.RequestAborted) is not { } record)
            {
                return TypedResults.Problem("No such key.", statusCode: StatusCodes.Status404NotFound);
            }
            if (record.ExpiredAt(time.GetUtcNow()))
            {
                return TypedResults.Problem("That key has expired.", statusCode: StatusCodes.Status400BadRequest);
            }
            caller = Caller.For(record);
        }
        context.Features.Set(caller);
        return await ChatCompletionsApi.CreateChatCompletion(context, router, routing, limiter, audit, options);
    }

    internal static async Task<IResult> RecordAsync(ConsoleAudit audit, [Microsoft.AspNetCore.Mvc.FromQuery(Name = "request_id")] string? requestId)
    {
        if (string.IsNullOrEmpty(requestId) || requestId.Length > 128)
        {
            return TypedResults.Problem("Give request_id.", statusCode: StatusCodes.Status400BadRequest);
        }
        // The call ended a moment ago: its record is among the newest, if it has been written yet.
        var (page, problem) = await audit.ReadPageAsync(new AuditQuery { RequestId = requestId }, 1, null);
        if (problem is not null)
        {
            return TypedResults.Json(new PlaygroundRecord(false, problem, null, null), UiJsonContext.Default.PlaygroundRecord);
        }
        var entry = page!.Entries.FirstOrDefault();
        return TypedResults.Json(new PlaygroundRecord(entry is not null, null, entry?.Id, entry?.Record), UiJsonContext.Default.PlaygroundRecord);
    }

    /// <summary>
    /// The browser says where the request comes from: <c>Sec-Fetch-Site</c> (every current browser) must be
    /// <c>same-origin</c>, and an <c>Origin</c>, when sent, must name this host.
    /// </summary>
    internal static bool SameOrigin(HttpRequest request)
    {
        var site = request.Headers["Sec-Fetch-Site"].ToString();
        if (site.Length > 0 && site != "same-origin")
        {
            return false;
        }
        var origin = request.Headers.Origin.ToString();
        if (origin.Length == 0)
        {
            return site == "same-origin";
        }
        return Uri.TryCreate(origin, UriKind.Absolute, out var uri)
            && string.Equals(uri.Authority, request.Host.Value, StringComparison.OrdinalIgnoreCase);
    }
}

internal sealed record PlaygroundRecord(
    [property: JsonPropertyName("found")] bool Found,
    [property: JsonPropertyName("problem")] string? Problem,
    [property: JsonPropertyName("entry_id")] string? EntryId,
    [property: JsonPropertyName("record")] AuditRecord? Record);

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(PlaygroundRecord))]
internal sealed partial class UiJsonContext : JsonSerializerContext;
