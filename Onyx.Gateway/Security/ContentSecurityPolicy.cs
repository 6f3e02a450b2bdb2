namespace Onyx.Gateway.Security;

/// <summary>
/// A response's own Content-Security-Policy, set on the request's features by whatever serves pages (the admin console)
/// in place of the API's <see cref="SecurityHeadersMiddleware.ApiPolicy"/>, which lets a browser load nothing at all.
/// </summary>
internal sealed record ContentSecurityPolicy(string Value);
