namespace Onyx.Gateway.Security;

/// <summary>
/// Headers that keep a browser from doing anything clever with the gateway's answers: no MIME sniffing, no framing,
/// no referrer, no content of its own to run, and API answers never cached. Hand-written because ASP.NET Core has
/// no built-in middleware for them and the set is five fixed headers. A page (the admin console) sets its own
/// <see cref="ContentSecurityPolicy"/> on the request's features; every other answer gets <see cref="ApiPolicy"/>.
/// </summary>
internal sealed class SecurityHeadersMiddleware(RequestDelegate next)
{
    /// <summary>An API answer is data, never a page: a browser that renders one may load and run nothing.</summary>
    public const string ApiPolicy = "default-src 'none'; frame-ancestors 'none'";

    public Task InvokeAsync(HttpContext context)
    {
        context.Response.OnStarting(static state =>
        {
            var http = (HttpContext)state;
            var headers = http.Response.Headers;
            headers.XContentTypeOptions = "nosniff";
            headers.XFrameOptions = "DENY";
            headers.ContentSecurityPolicy = http.Features.Get<ContentSecurityPolicy>()?.Value ?? ApiPolicy;
            headers["Referrer-Policy"] = "no-referrer";
            // An SSE stream says no-cache itself; everything else the gateway answers is per caller and never cached.
            if (string.IsNullOrEmpty(headers.CacheControl))
            {
                headers.CacheControl = "no-store";
            }
            return Task.CompletedTask;
        }, context);
        return next(context);
    }
}
