using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;

namespace Onyx.Gateway.Security;

/// <summary>
/// The gateway's outer wall: Kestrel's transport limits set on purpose, security headers on every response, CORS
/// only for the origins an operator lists, and forwarded headers believed only from the proxies an operator lists.
/// </summary>
internal static class SecurityExtensions
{
    public const string KestrelLimitsSection = "Kestrel:Limits";

    public static IHostApplicationBuilder AddGatewaySecurity(this IHostApplicationBuilder builder)
    {
        var limits = builder.Configuration.GetSection(KestrelLimitsSection);
        builder.Services.AddOptions<KestrelServerOptions>().Configure<IOptions<OnyxOptions>>((kestrel, onyx) =>
        {
            kestrel.AddServerHeader = false;
            TransportLimits.Apply(kestrel.Limits, limits);
            kestrel.Limits.MaxRequestBodySize = onyx.Value.Limits.MaxRequestBodyBytes;
        });

        builder.Services.AddOptions<ForwardedHeadersOptions>().Configure<IOptions<OnyxOptions>>((forwarded, onyx) =>
        {
            var trusted = onyx.Value.ForwardedHeaders;
            forwarded.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto;
            forwarded.ForwardLimit = trusted.ForwardLimit;
            // ASP.NET Core trusts loopback by default; here only what the operator names is trusted.
            forwarded.KnownProxies.Clear();
            forwarded.KnownIPNetworks.Clear();
            foreach (var proxy in trusted.KnownProxies)
            {
                forwarded.KnownProxies.Add(System.Net.IPAddress.Parse(proxy));
            }
            foreach (var network in trusted.KnownNetworks)
            {
                forwarded.KnownIPNetworks.Add(System.Net.IPNetwork.Parse(network));
            }
        });

        var origins = builder.Configuration.GetSection($"{OnyxOptions.SectionName}:Cors:AllowedOrigins").Get<string[]>() ?? [];
        if (origins.Length > 0)
        {
            builder.Services.AddCors(cors => cors.AddDefaultPolicy(policy => policy
                .WithOrigins(origins)
                .WithMethods("GET", "POST")
                .WithHeaders("authorization", "content-type", "x-request-id", "openai-organization", "openai-project",
                    "x-stainless-arch", "x-stainless-lang", "x-stainless-os", "x-stainless-package-version",
                    "x-stainless-retry-count", "x-stainless-runtime", "x-stainless-runtime-version", "x-stainless-timeout")
                .WithExposedHeaders("x-request-id", "x-onyx-model-alias", "x-onyx-deployment", "x-onyx-fallback",
                    "x-onyx-attempts", "retry-after", "retry-after-ms", "x-ratelimit-limit-requests",
                    "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens",
                    "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens")
                .SetPreflightMaxAge(TimeSpan.FromMinutes(10))));
        }
        return builder;
    }

    /// <summary>Goes first in the pipeline, so even errors and refused preflights carry the headers.</summary>
    public static WebApplication UseGatewaySecurity(this WebApplication app)
    {
        var trusted = app.Services.GetRequiredService<IOptions<OnyxOptions>>().Value.ForwardedHeaders;
        if (trusted.KnownProxies.Count > 0 || trusted.KnownNetworks.Count > 0)
        {
            // First, so everything after it (the audit trail, the /metrics loopback rule) sees the real client.
            app.UseForwardedHeaders();
        }
        app.UseMiddleware<SecurityHeadersMiddleware>();
        if (app.Services.GetRequiredService<IOptions<OnyxOptions>>().Value.Cors.AllowedOrigins.Count > 0)
        {
            // Before authentication: a browser's preflight carries no key.
            app.UseCors();
        }
        return app;
    }
}
