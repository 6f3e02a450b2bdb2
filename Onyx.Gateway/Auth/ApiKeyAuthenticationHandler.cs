using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Auth;

/// <summary>
/// <c>Authorization: Bearer &lt;key&gt;</c> → a <see cref="Caller"/> (put on the request's features) and a principal
/// whose role says whether it holds the master key. Refusals are OpenAI-shaped: 401 for a missing, wrong, expired
/// or deleted key, 403 for a key without the master key's rights, 503 when the key cannot be checked right now.
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory loggerFactory, UrlEncoder encoder, KeyRegistry keys)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, loggerFactory, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string AdminRole = "admin";

    private KeyCheck _check;

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (keys.Open)
        {
            return Success(Caller.Anonymous);
        }
        var header = Request.Headers.Authorization.ToString();
        var presented = header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header["Bearer ".Length..].Trim() : null;
        var (check, caller, _) = await keys.CheckAsync(presented, Context.RequestAborted);
        _check = check;
        return check == KeyCheck.Valid ? Success(caller!) : AuthenticateResult.Fail(check.ToString());
    }

    private AuthenticateResult Success(Caller caller)
    {
        Context.Features.Set(caller);
        var claims = new List<Claim> { new(ClaimTypes.NameIdentifier, caller.UserId) };
        if (caller.IsMaster)
        {
            claims.Add(new Claim(ClaimTypes.Role, AdminRole));
        }
        var principal = new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName));
        return AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var (status, error) = _check switch
        {
            KeyCheck.Unverifiable => (StatusCodes.Status503ServiceUnavailable, new OpenAiError(
                "The API key cannot be checked right now (the key store is unreachable). Try again shortly.",
                OpenAiErrorTypes.ServiceUnavailable, null, "key_store_unavailable")),
            KeyCheck.Expired => (StatusCodes.Status401Unauthorized, new OpenAiError(
                "The API key has expired.", OpenAiErrorTypes.Authentication, null, "expired_api_key")),
            KeyCheck.Invalid => (StatusCodes.Status401Unauthorized, new OpenAiError(
                "Incorrect API key provided (unknown, deleted or mistyped).", OpenAiErrorTypes.Authentication, null, "invalid_api_key")),
            _ => (StatusCodes.Status401Unauthorized, new OpenAiError(
                "No API key provided. Send it as 'Authorization: Bearer <key>'.", OpenAiErrorTypes.Authentication, null, "missing_api_key")),
        };
        if (status == StatusCodes.Status401Unauthorized)
        {
            Response.Headers.WWWAuthenticate = "Bearer";
        }
        return OpenAiErrorWriter.WriteAsync(Context, status, error);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) =>
        OpenAiErrorWriter.WriteAsync(Context, StatusCodes.Status403Forbidden, new OpenAiError(
            keys.HasMasterKey ? "This endpoint needs the master key." : "This endpoint needs the master key, and none is configured.",
            OpenAiErrorTypes.Permission, null, "master_key_required"));
}
