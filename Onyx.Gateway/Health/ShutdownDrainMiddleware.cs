using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Health;

/// <summary>
/// First in the pipeline: counts every request but the health probes in and out of <see cref="GracefulShutdown"/>,
/// refuses new ones once the drain has begun, and makes the drain limit reach the requests in flight.
/// </summary>
/// <remarks>
/// The drain limit reaches a request through <see cref="HttpContext.RequestAborted"/>, linked here to the limit the way
/// ASP.NET Core's request-timeouts middleware links its timeout: everything downstream (routing, the upstream call,
/// the stream writer) already stops when that token fires, so a request ended at the limit needs no new code path.
/// </remarks>
internal sealed class ShutdownDrainMiddleware(RequestDelegate next, GracefulShutdown shutdown)
{
    private static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(1);

    public async Task InvokeAsync(HttpContext context)
    {
        var path = context.Request.Path;
        if (path.StartsWithSegments(Extensions.HealthEndpointPath) || path.StartsWithSegments(Extensions.AlivenessEndpointPath))
        {
            // Probes are answered until the server stops: they are how the outside learns about the drain.
            await next(context);
            return;
        }
        if (!shutdown.TryEnter())
        {
            await RefuseAsync(context, "The gateway is shutting down and takes no new requests. Retry the request.");
            return;
        }

        var clientAborted = context.RequestAborted;
        var drain = new ShutdownDrainFeature(clientAborted, shutdown.DrainLimitReached);
        try
        {
            using var aborted = CancellationTokenSource.CreateLinkedTokenSource(clientAborted, drain.DrainLimitReached);
            context.RequestAborted = aborted.Token;
            context.Features.Set(drain);
            try
            {
                await next(context);
            }
            catch (OperationCanceledException) when (drain.EndedAtDrainLimit && !context.Response.HasStarted)
            {
                // Answered below. (The exception handler usually gets there first: it swallows a cancellation of
                // RequestAborted and leaves a 499.)
            }
            finally
            {
                context.RequestAborted = clientAborted;
            }
            if (drain.EndedAtDrainLimit && !context.Response.HasStarted)
            {
                await RefuseAsync(context, "The gateway is shutting down and ended this request at its drain limit before an answer. Retry the request.");
            }
        }
        finally
        {
            shutdown.Exit();
        }
    }

    private static Task RefuseAsync(HttpContext context, string message)
    {
        if (HttpProtocol.IsHttp11(context.Request.Protocol) || HttpProtocol.IsHttp10(context.Request.Protocol))
        {
            // The client's next request then opens a new connection, which the load balancer sends elsewhere.
            context.Response.Headers.Connection = "close";
        }
        return OpenAiErrorWriter.WriteAsync(context, StatusCodes.Status503ServiceUnavailable,
            new OpenAiError(message, OpenAiErrorTypes.ServiceUnavailable, null, "shutting_down"), RetryAfter);
    }
}

/// <summary>
/// Set on every request <see cref="ShutdownDrainMiddleware"/> lets in. <see cref="HttpContext.RequestAborted"/> fires at the
/// drain limit as well as when the client goes away; this tells the two apart.
/// </summary>
internal sealed class ShutdownDrainFeature(CancellationToken clientAborted, CancellationToken drainLimitReached)
{
    /// <summary>The connection's own RequestAborted: the client went away.</summary>
    public CancellationToken ClientAborted { get; } = clientAborted;

    public CancellationToken DrainLimitReached { get; } = drainLimitReached;

    /// <summary>The drain limit, not the client, ended the request: the client is still there to be told.</summary>
    public bool EndedAtDrainLimit => DrainLimitReached.IsCancellationRequested && !ClientAborted.IsCancellationRequested;
}

/// <summary>Puts <see cref="ShutdownDrainMiddleware"/> in front of the app's own pipeline.</summary>
internal sealed class ShutdownDrainStartupFilter : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.UseMiddleware<ShutdownDrainMiddleware>();
        next(app);
    };
}
