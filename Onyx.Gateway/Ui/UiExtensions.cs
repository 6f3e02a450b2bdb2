using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.DataProtection.StackExchangeRedis;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Auth;
using Onyx.Gateway.Cluster;
using Onyx.Gateway.Security;
using Onyx.Gateway.Ui.Components;
using StackExchange.Redis;

namespace Onyx.Gateway.Ui;

/// <summary>
/// The admin console at <c>/ui</c>: Blazor static server rendering (every page is plain HTML from the server and its
/// forms post back; no WebSocket circuit, no WebAssembly), signed in with the master key. Everything it adds to the
/// request pipeline runs for <c>/ui</c> only, so the API's requests pay for none of it.
/// </summary>
internal static class UiExtensions
{
    /// <summary>
    /// The console's pages load only the gateway's own stylesheet and the playground's script; no inline script or
    /// style, no other origin, no framing, forms post only to the gateway.
    /// </summary>
    public const string PagePolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; " +
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

    private static readonly ContentSecurityPolicy PageCsp = new(PagePolicy);

    /// <summary>Where the console's session and antiforgery keys live with Redis: shared, so any replica reads any cookie.</summary>
    public const string DataProtectionKey = "onyx:console:data-protection-keys";

    public static IHostApplicationBuilder AddAdminConsole(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddRazorComponents();
        services.AddSingleton<ConsoleAudit>();
        services.AddAuthentication().AddCookie(ConsoleAccess.Scheme, ConsoleAccess.ConfigureCookie);
        services.AddAuthorizationBuilder().AddPolicy(ConsoleAccess.Policy, policy => policy
            .AddAuthenticationSchemes(ConsoleAccess.Scheme)
            .RequireRole(ApiKeyAuthenticationHandler.AdminRole));
        services.AddAntiforgery(options =>
        {
            options.Cookie.Name = ConsoleAccess.AntiforgeryCookieName;
            options.Cookie.Path = ConsoleAccess.Path;
            options.Cookie.SameSite = SameSiteMode.Strict;
            options.Cookie.HttpOnly = true;
            options.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            options.HeaderName = PlaygroundApi.AntiforgeryHeader;
        });
        services.AddDataProtection().SetApplicationName("onyx-gateway");
        if (ClusterExtensions.HasRedis(builder.Configuration))
        {
            // Every replica must read a session cookie another replica wrote (a load balancer without sticky sessions).
            services.AddOptions<KeyManagementOptions>().Configure<IServiceProvider>((options, sp) =>
                options.XmlRepository = new RedisXmlRepository(() => sp.GetRequiredService<IConnectionMultiplexer>().GetDatabase(), DataProtectionKey));
        }
        return builder;
    }

    /// <summary>
    /// For <c>/ui</c> only, before authentication: off (404) without a master key, and the pages' Content-Security-Policy
    /// on every console response (a sign-in redirect included).
    /// </summary>
    public static WebApplication UseAdminConsole(this WebApplication app)
    {
        app.UseWhen(IsConsole, console => console.Use((context, next) =>
        {
            context.Features.Set(PageCsp);
            if (!context.RequestServices.GetRequiredService<KeyRegistry>().HasMasterKey)
            {
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                context.Response.ContentType = "text/html; charset=utf-8";
                return context.Response.WriteAsync(ConsoleOffPage);
            }
            return next(context);
        }));
        return app;
    }

    /// <summary>
    /// For <c>/ui</c> only, after authentication and authorization (so tokens are bound to the signed-in session): the
    /// antiforgery check of every form post.
    /// </summary>
    public static WebApplication UseAdminConsoleForms(this WebApplication app)
    {
        app.UseWhen(IsConsole, console => console.UseAntiforgery());
        return app;
    }

    private static bool IsConsole(HttpContext context) => context.Request.Path.StartsWithSegments(ConsoleAccess.Path);

    public static WebApplication MapAdminConsole(this WebApplication app)
    {
        app.MapStaticAssets();
        app.MapRazorComponents<App>().RequireAuthorization(ConsoleAccess.Policy);
        app.MapPost(ConsoleAccess.Path + "/signout", SignOutAsync).RequireAuthorization(ConsoleAccess.Policy);
        app.MapPlaygroundApi();
        return app;
    }

    private static async Task<IResult> SignOutAsync(HttpContext context, IAntiforgery antiforgery, ILoggerFactory loggers)
    {
        if (!await antiforgery.IsRequestValidAsync(context))
        {
            return TypedResults.BadRequest();
        }
        await ConsoleAccess.SignOutAsync(context, loggers.CreateLogger(typeof(ConsoleAccess).FullName!));
        return TypedResults.Redirect(ConsoleAccess.Path + "/signin");
    }

    private const string ConsoleOffPage = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>Onyx admin console: off</title></head>
        <body><h1>The admin console is off</h1>
        <p>It opens only on a gateway with a master key: set <code>LITELLM_MASTER_KEY</code> (or
        <code>general_settings.master_key</code>) and sign in with it.</p></body></html>
        """;
}
