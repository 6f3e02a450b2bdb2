using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using Onyx.Gateway.Audit;
using Onyx.Gateway.Auth;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.RateLimiting;
using Onyx.Gateway.Routing;

namespace Onyx.Gateway.Api;

/// <summary><c>POST /v1/chat/completions</c> (and <c>/chat/completions</c>): OpenAI's chat API.</summary>
internal static partial class ChatCompletionsApi
{
    public const string AliasHeader = "x-onyx-model-alias";
    public const string DeploymentHeader = "x-onyx-deployment";
    public const string FallbackHeader = "x-onyx-fallback";
    public const string AttemptsHeader = "x-onyx-attempts";
    public const string RequestIdHeader = "x-request-id";

    private static readonly JsonDocumentOptions ParseOptions = new() { MaxDepth = 64, AllowDuplicateProperties = false };

    public static IEndpointRouteBuilder MapChatCompletionsApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/chat/completions", CreateChatCompletion).RequireAuthorization(AuthExtensions.CallerPolicy);
        app.MapPost("/chat/completions", CreateChatCompletion).RequireAuthorization(AuthExtensions.CallerPolicy);
        return app;
    }

    internal static async Task<Results<OpenAiErrorResult, FileContentHttpResult, ChatStreamResult>> CreateChatCompletion(
        HttpContext context, ChatCompletionRouter router, RoutingTable routing, UsageLimiter limiter, AuditWriter audit, IOptions<OnyxOptions> options)
    {
        var requestId = RequestId(context);
        var (request, error) = await ReadRequestAsync(context, options.Value.Limits);
        if (error is not null)
        {
            return error;
        }
        var caller = context.GetCaller();
        var clientAddress = context.Connection.RemoteIpAddress?.ToString();
        if (!caller.MayUse(request!.Model))
        {
            var forbidden = new OpenAiError($"This API key may not use the model '{request.Model}'.", OpenAiErrorTypes.Permission, "model", "model_not_allowed");
            audit.Refused(requestId, request, caller.UserId, caller.KeyName, clientAddress, StatusCodes.Status403Forbidden, forbidden);
            return new OpenAiErrorResult(StatusCodes.Status403Forbidden, forbidden);
        }
        if (!routing.TryGetChain(request.Model, out var chain))
        {
            // Refused before the limiter: a request no deployment can serve must not use up the caller's limits.
            var unknown = new OpenAiError($"The model '{request.Model}' does not exist. GET /v1/models lists the models this gateway serves.",
                OpenAiErrorTypes.InvalidRequest, "model", "model_not_found");
            audit.Refused(requestId, request, caller.UserId, caller.KeyName, clientAddress, StatusCodes.Status404NotFound, unknown);
            return new OpenAiErrorResult(StatusCodes.Status404NotFound, unknown);
        }
        if (CheckOutputLimit(request, routing) is { } tooMany)
        {
            return tooMany;
        }

        var estimate = caller.Budget is null ? 0 : BudgetEstimate.Of(request, chain);
        var limit = await limiter.AdmitAsync(caller, request, estimate, context.RequestAborted);
        // From here on the lease is completed whatever happens (once: the call's own end completes it first), so that
        // nothing the admission took outlives the request.
        var streaming = false;
        try
        {
            limit.WriteHeaders(context.Response.Headers);
            if (!limit.Admitted)
            {
                context.Response.Headers[AliasHeader] = request.Model;
                var (status, refusal, retryAfter) = limit.Refusal();
                audit.Refused(requestId, request, caller.UserId, caller.KeyName, clientAddress, status, refusal);
                return new OpenAiErrorResult(status, refusal, retryAfter);
            }

            var owner = new CallOwner(caller.UserId, caller.KeyName, limit.Lease is { } lease ? lease.Complete : null, clientAddress) { KeyHash = caller.KeyHash };
            if (request.Stream)
            {
                var stream = await router.StreamAsync(request, requestId, owner, context.RequestAborted);
                streaming = true;
                return new ChatStreamResult(stream);
            }
            var completion = await router.CompleteAsync(request, requestId, owner, context.RequestAborted);
            AddRouteHeaders(context.Response, completion.Route);
            return TypedResults.Bytes(completion.Body, "application/json");
        }
        catch (RoutingException ex)
        {
            context.Response.Headers[AliasHeader] = request.Model;
            return new OpenAiErrorResult(ex.StatusCode, ex.Error, ex.RetryAfter);
        }
        finally
        {
            // The call log has already reported the tokens and cost unless the call never got that far; a stream
            // reports them when it ends.
            if (!streaming)
            {
                limit.Lease?.Complete(0, null);
            }
        }
    }

    internal static void AddRouteHeaders(HttpResponse response, RouteInfo route)
    {
        var headers = response.Headers;
        headers[AliasHeader] = route.Alias;
        headers[DeploymentHeader] = route.Deployment.Id;
        headers[FallbackHeader] = route.Fallback ? "true" : "false";
        headers[AttemptsHeader] = route.Attempts.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task<(ChatRequest? Request, OpenAiErrorResult? Error)> ReadRequestAsync(HttpContext context, LimitsOptions limits)
    {
        var httpRequest = context.Request;
        if (!IsJson(httpRequest.ContentType))
        {
            var given = httpRequest.ContentType is { } contentType ? $"not '{Shorten(contentType)}'" : "and none was given";
            return (null, Invalid(StatusCodes.Status415UnsupportedMediaType, $"Content-Type must be application/json (UTF-8), {given}.", null, "unsupported_media_type"));
        }
        if (httpRequest.ContentLength > limits.MaxRequestBodyBytes)
        {
            return (null, TooLarge(context, limits.MaxRequestBodyBytes));
        }
        JsonElement body;
        try
        {
            // Kestrel enforces MaxRequestBodySize while this reads (a chunked body too), and its minimum data rate
            // cuts off a client that trickles the body. The request outlives this method (the call log and the audit
            // trail read it when the call ends), so it keeps its own copy of the body, not the pooled document.
            using var document = await JsonDocument.ParseAsync(httpRequest.Body, ParseOptions, context.RequestAborted);
            body = document.RootElement.Clone();
        }
        catch (JsonException ex)
        {
            // System.Text.Json's message names the path and byte position where the body broke, and quotes none of it.
            // (Its advice to the programmer — "Change the reader options." — means nothing to a client.)
            var detail = ex.Message.Replace(" Change the reader options.", "", StringComparison.Ordinal);
            return (null, Invalid(StatusCodes.Status400BadRequest, $"The request body is not valid JSON: {detail}", null, "invalid_json"));
        }
        catch (InvalidOperationException)
        {
            // The parser's duplicate-property check decodes every property name, and throws this (not a
            // JsonException) on a name holding a lone surrogate escape (found by the fuzz test).
            return (null, Invalid(StatusCodes.Status400BadRequest,
                "The request body contains a property name that is not valid UTF-16 (a lone surrogate escape).", null, "invalid_json"));
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, TooLarge(context, limits.MaxRequestBodyBytes));
        }
        catch (BadHttpRequestException ex)
        {
            // The body could not be read: it arrived too slowly (408; Kestrel closes the connection) or broke off.
            return (null, Invalid(ex.StatusCode, $"The request body could not be read: {ex.Message}", null, "bad_request_body"));
        }
        return ChatRequest.TryParse(body, limits.MaxMessages, out var request, out var error)
            ? (request, null)
            : (null, new OpenAiErrorResult(StatusCodes.Status400BadRequest, error));
    }

    /// <summary><c>application/json</c> or <c>application/*+json</c>, in UTF-8 (the only charset JSON may use).</summary>
    private static bool IsJson(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var media)
        && (media.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
            || (media.Type.Equals("application", StringComparison.OrdinalIgnoreCase) && media.Suffix.Equals("json", StringComparison.OrdinalIgnoreCase)))
        && (!media.Charset.HasValue || media.Charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) || media.Charset.Equals("utf8", StringComparison.OrdinalIgnoreCase));

    private static string Shorten(string text) => text.Length <= 100 ? text : string.Concat(text.AsSpan(0, 100), "…");

    /// <summary>
    /// A request for more output tokens than a deployment that may serve it can give is refused up front: that
    /// deployment would answer 400, or a fallback would quietly give a shorter answer than asked for.
    /// </summary>
    private static OpenAiErrorResult? CheckOutputLimit(ChatRequest request, RoutingTable routing)
    {
        if (request.RequestedMaxTokens is not { } asked || routing.MaxOutputTokens(request.Model) is not { } limit || asked <= limit)
        {
            return null;
        }
        var param = ChatRequest.TryGetField(request.Body, "max_completion_tokens"u8, out _) ? "max_completion_tokens" : "max_tokens";
        return Invalid(StatusCodes.Status400BadRequest,
            $"'{param}' is {asked}, more than the {limit} output tokens model '{request.Model}' can give.", param, "invalid_value");
    }

    /// <summary>
    /// The 413, with <c>Connection: close</c>: the rest of the body is never read, so the connection cannot carry
    /// another request — without the header a client would reuse it and see its next request fail.
    /// </summary>
    private static OpenAiErrorResult TooLarge(HttpContext context, long maxBodyBytes)
    {
        context.Response.Headers.Connection = "close";
        return Invalid(StatusCodes.Status413PayloadTooLarge,
            $"The request body is larger than the gateway's limit of {maxBodyBytes} bytes.", null, "request_too_large");
    }

    private static OpenAiErrorResult Invalid(int status, string message, string? param, string code) =>
        new(status, new OpenAiError(message, OpenAiErrorTypes.InvalidRequest, param, code));

    /// <summary>The caller's <c>x-request-id</c> when it is a plain token, else a new one; echoed on the response.</summary>
    private static string RequestId(HttpContext context)
    {
        var given = context.Request.Headers[RequestIdHeader].ToString();
        var id = given.Length is > 0 and <= 128 && SafeRequestId().IsMatch(given) ? given : UniqueIds.NewId();
        context.Response.Headers[RequestIdHeader] = id;
        return id;
    }

    [GeneratedRegex("^[A-Za-z0-9._:-]+$")]
    private static partial Regex SafeRequestId();
}
