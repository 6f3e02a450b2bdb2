using Microsoft.AspNetCore.Diagnostics;
using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Api;

internal static class ApiExtensions
{
    public static IHostApplicationBuilder AddGatewayApi(this IHostApplicationBuilder builder)
    {
        builder.Services.ConfigureHttpJsonOptions(json =>
        {
            json.SerializerOptions.TypeInfoResolverChain.Insert(0, OpenAiJsonContext.Default);
            json.SerializerOptions.TypeInfoResolverChain.Insert(1, KeysJsonContext.Default);
        });
        builder.Services.AddSingleton<KeyManagement>();
        return builder;
    }

    /// <summary>Every error the gateway itself produces — unknown routes, crashes — is OpenAI-shaped too.</summary>
    public static WebApplication UseOpenAiErrors(this WebApplication app)
    {
        app.UseExceptionHandler(errors => errors.Run(context =>
        {
            var feature = context.Features.Get<IExceptionHandlerFeature>();
            var (status, error) = feature?.Error is Microsoft.AspNetCore.Http.BadHttpRequestException bad
                ? (bad.StatusCode, new OpenAiError(bad.Message, OpenAiErrorTypes.InvalidRequest, null, "bad_request"))
                : (StatusCodes.Status500InternalServerError, new OpenAiError("The gateway failed to handle the request.", OpenAiErrorTypes.Server, null, "internal_error"));
            return new OpenAiErrorResult(status, error).ExecuteAsync(context);
        }));
        app.UseStatusCodePages(context =>
        {
            var http = context.HttpContext;
            var status = http.Response.StatusCode;
            var error = status switch
            {
                StatusCodes.Status404NotFound => new OpenAiError($"Unknown endpoint: {http.Request.Method} {http.Request.Path}.", OpenAiErrorTypes.InvalidRequest, null, "unknown_url"),
                StatusCodes.Status405MethodNotAllowed => new OpenAiError($"Method {http.Request.Method} is not allowed on {http.Request.Path}.", OpenAiErrorTypes.InvalidRequest, null, "method_not_allowed"),
                _ => new OpenAiError($"HTTP {status}.", OpenAiErrorTypes.InvalidRequest, null, null),
            };
            return new OpenAiErrorResult(status, error).ExecuteAsync(http);
        });
        return app;
    }
}
