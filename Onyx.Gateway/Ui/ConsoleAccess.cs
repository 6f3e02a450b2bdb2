using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Onyx.Gateway.Auth;

namespace Onyx.Gateway.Ui;

/// <summary>
/// Who may use the admin console: whoever shows the master key once, at sign-in; a cookie session after that. The
/// cookie is only ever sent to <c>/ui</c> (its path), never cross-site (SameSite=Strict), never to script (HttpOnly),
/// only over HTTPS when the console is served over HTTPS, and lapses after <see cref="SessionLifetime"/> unused.
/// </summary>
internal static partial class ConsoleAccess
{
    public const string Path = "/ui";
    public const string Scheme = "OnyxConsole";
    public const string Policy = "console";
    public const string CookieName = "onyx-console";
    public const string AntiforgeryCookieName = "onyx-console-af";

    /// <summary>A session lasts this long after its last page; each page renews it (sliding).</summary>
    public static readonly TimeSpan SessionLifetime = TimeSpan.FromMinutes(20);

    public static void ConfigureCookie(CookieAuthenticationOptions options)
    {
        options.Cookie.Name = CookieName;
        options.Cookie.Path = Path;
        options.Cookie.HttpOnly = true;
        options.Cookie.SameSite = SameSiteMode.Strict;
        options.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
        options.ExpireTimeSpan = SessionLifetime;
        options.SlidingExpiration = true;
        options.LoginPath = Path + "/signin";
        options.LogoutPath = Path + "/signout";
        options.AccessDeniedPath = Path + "/signin";
        options.ReturnUrlParameter = "returnUrl";
    }

    /// <summary>
    /// Signs the browser in when <paramref name="presented"/> is the master key; false (and a log line naming the client,
    /// never what it typed) otherwise. Only the master key opens the console: other keys are for the API.
    /// </summary>
    public static async Task<bool> SignInAsync(HttpContext context, KeyRegistry keys, string? presented, ILogger logger)
    {
        var (check, caller, _) = await keys.CheckAsync(presented, context.RequestAborted);
        var client = context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        if (check != KeyCheck.Valid || caller is not { IsMaster: true })
        {
            Log.SignInRefused(logger, client);
            return false;
        }
        var identity = new ClaimsIdentity(
            [new Claim(ClaimTypes.NameIdentifier, Caller.MasterUser), new Claim(ClaimTypes.Name, "admin"), new Claim(ClaimTypes.Role, ApiKeyAuthenticationHandler.AdminRole)],
            Scheme, ClaimTypes.Name, ClaimTypes.Role);
        await context.SignInAsync(Scheme, new ClaimsPrincipal(identity), new AuthenticationProperties { IsPersistent = false });
        Log.SignedIn(logger, client);
        return true;
    }

    public static async Task SignOutAsync(HttpContext context, ILogger logger)
    {
        await context.SignOutAsync(Scheme);
        Log.SignedOut(logger, context.Connection.RemoteIpAddress?.ToString() ?? "unknown");
    }

    /// <summary>Where to go after signing in: a console page of this gateway, never another site.</summary>
    public static string SafeReturnUrl(string? returnUrl) =>
        returnUrl is { Length: > 0 } url && (url == Path || url.StartsWith(Path + "/", StringComparison.Ordinal) || url.StartsWith(Path + "?", StringComparison.Ordinal))
            && !url.Contains("//", StringComparison.Ordinal) && !url.Contains('\\', StringComparison.Ordinal)
            ? url
            : Path;

    private static partial class Log
    {
        [LoggerMessage(9001, LogLevel.Warning, "Admin console: sign-in refused from {Client} (not the master key)")]
        public static partial void SignInRefused(ILogger logger, string client);

        [LoggerMessage(9002, LogLevel.Information, "Admin console: signed in from {Client}")]
        public static partial void SignedIn(ILogger logger, string client);

        [LoggerMessage(9003, LogLevel.Information, "Admin console: signed out from {Client}")]
        public static partial void SignedOut(ILogger logger, string client);
    }
}
