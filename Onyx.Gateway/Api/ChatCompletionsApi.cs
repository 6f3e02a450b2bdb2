using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Audit;
using Onyx.Gateway.Auth;
using Onyx.Gateway.Configuration;
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

    private static readonly JsonDocumentOptions ParseOptions = new() { MaxDepth = 64 };

    public static IEndpointRouteBuilder MapChatCompletionsApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/chat/completions", CreateChatCompletion).RequireAuthorization(AuthExtensions.CallerPolicy);
        app.MapPost("/chat/completions", CreateChatCompletion).RequireAuthorization(AuthExtensions.CallerPolicy);
        return app;
    }

    internal static async Task<Results<OpenAiErrorResult, FileContentHttpResult, ChatStreamResult>> CreateChatCompletion(
        HttpContext context, ChatCompletionRouter router, UsageLimiter limiter, AuditWriter audit, IOptions<OnyxOptions> options)
    {
        var requestId = RequestId(context);
        var (request, error) = await ReadRequestAsync(context, options.Value.Limits.MaxRequestBodyBytes);
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

        var limit = await limiter.AdmitAsync(caller, request, context.RequestAborted);
        limit.WriteHeaders(context.Response.Headers);
        if (!limit.Admitted)
        {
            context.Response.Headers[AliasHeader] = request.Model;
            var (status, refusal, retryAfter) = limit.Refusal();
            audit.Refused(requestId, request, caller.UserId, caller.KeyName, clientAddress, status, refusal);
            return new OpenAiErrorResult(status, refusal, retryAfter);
        }

        var owner = new CallOwner(caller.UserId, caller.KeyName, limit.Lease is { } lease ? lease.Complete : null, clientAddress);
        var streaming = false;
        try
        {
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
            // The call log has already reported the tokens unless the call never got that far; a stream reports
            // them when it ends.
            if (!streaming)
            {
                limit.Lease?.Complete(0);
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

    private static async Task<(ChatRequest? Request, OpenAiErrorResult? Error)> ReadRequestAsync(HttpContext context, long maxBodyBytes)
    {
        var httpRequest = context.Request;
        if (httpRequest.ContentType is { } contentType && !contentType.Contains("json", StringComparison.OrdinalIgnoreCase))
        {
            return (null, Invalid(StatusCodes.Status415UnsupportedMediaType, $"Content-Type must be application/json, not '{contentType}'.", null, "unsupported_media_type"));
        }
        if (httpRequest.ContentLength > maxBodyBytes)
        {
            return (null, TooLarge(maxBodyBytes));
        }
        JsonNode? node;
        try
        {
            node = await JsonNode.ParseAsync(httpRequest.Body, documentOptions: ParseOptions, cancellationToken: context.RequestAborted);
        }
        catch (JsonException ex)
        {
            return (null, Invalid(StatusCodes.Status400BadRequest, $"The request body is not valid JSON: {ex.Message}", null, "invalid_json"));
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, TooLarge(maxBodyBytes));
        }
        return ChatRequest.TryParse(node, out var request, out var error)
            ? (request, null)
            : (null, new OpenAiErrorResult(StatusCodes.Status400BadRequest, error));
    }

    private static OpenAiErrorResult TooLarge(long maxBodyBytes) => Invalid(StatusCodes.Status413PayloadTooLarge,
        $"The request body is larger than the gateway's limit of {maxBodyBytes} bytes.", null, "request_too_large");

    private static OpenAiErrorResult Invalid(int status, string message, string? param, string code) =>
        new(status, new OpenAiError(message, OpenAiErrorTypes.InvalidRequest, param, code));

    /// <summary>The caller's <c>x-request-id</c> when it is a plain token, else a new one; echoed on the response.</summary>
    private static string RequestId(HttpContext context)
    {
        var given = context.Request.Headers[RequestIdHeader].ToString();
        var id = given.Length is > 0 and <= 128 && SafeRequestId().IsMatch(given) ? given : Guid.NewGuid().ToString("N");
        context.Response.Headers[RequestIdHeader] = id;
        return id;
    }

    [GeneratedRegex("^[A-Za-z0-9._:-]+$")]
    private static partial Regex SafeRequestId();
}
