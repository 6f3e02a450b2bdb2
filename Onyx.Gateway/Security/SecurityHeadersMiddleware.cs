namespace Onyx.Gateway.Security;

/// <summary>
/// Headers that keep a browser from doing anything clever with the gateway's answers: no MIME sniffing, no framing,
/// no referrer, no content of its own to run, and API answers never cached. Hand-written because ASP.NET Core has
/// no built-in middleware for them and the set is five fixed headers.
/// </summary>
internal sealed class SecurityHeadersMiddleware(RequestDelegate next)
{
    public Task InvokeAsync(HttpContext context)
    {
        context.Response.OnStarting(static state =>
        {
            var headers = ((HttpResponse)state).Headers;
            headers.XContentTypeOptions = "nosniff";
            headers.XFrameOptions = "DENY";
            headers.ContentSecurityPolicy = "default-src 'none'; frame-ancestors 'none'";
            headers["Referrer-Policy"] = "no-referrer";
            // An SSE stream says no-cache itself; everything else the gateway answers is per caller and never cached.
            if (string.IsNullOrEmpty(headers.CacheControl))
            {
                headers.CacheControl = "no-store";
            }
            return Task.CompletedTask;
        }, context.Response);
        return next(context);
    }
}
