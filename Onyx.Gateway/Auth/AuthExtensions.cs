using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Cluster;
using Onyx.Gateway.Configuration;
using StackExchange.Redis;

namespace Onyx.Gateway.Auth;

internal static class AuthExtensions
{
    /// <summary>Any caller with a valid key (or anyone, on an open loopback gateway).</summary>
    public const string CallerPolicy = "caller";

    /// <summary>The master key only.</summary>
    public const string AdminPolicy = "admin";

    /// <summary>A caller on this machine (after trusted proxies' forwarded headers), or the master key.</summary>
    public const string LoopbackOrAdminPolicy = "loopback-or-admin";

    /// <summary>
    /// API keys as ASP.NET Core authentication: one scheme (<see cref="ApiKeyAuthenticationHandler"/>) and two
    /// policies. Generated keys live in Redis when there is one, in memory otherwise.
    /// </summary>
    public static IHostApplicationBuilder AddGatewayAuth(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddSingleton(sp =>
        {
            var access = AccessConfiguration.Build(sp.GetRequiredService<IOptions<LiteLlmOptions>>().Value,
                sp.GetRequiredService<IConfiguration>(), sp.GetRequiredService<TimeProvider>(), out var errors);
            return errors.Count == 0 ? access : throw new OptionsValidationException("general_settings", typeof(LiteLlmOptions), errors);
        });
        if (ClusterExtensions.HasRedis(builder.Configuration))
        {
            services.AddSingleton<IKeyStore>(sp => new RedisKeyStore(sp.GetRequiredService<IConnectionMultiplexer>(), sp.GetRequiredService<TimeProvider>()));
        }
        else
        {
            services.AddSingleton<IKeyStore, InMemoryKeyStore>();
        }
        services.AddSingleton<KeyRegistry>();
        services.AddHostedService(sp => sp.GetRequiredService<KeyRegistry>());
        // Does not gate readiness: without Redis the master key, config keys and cached keys still work.
        services.AddHealthChecks().Add(new HealthCheckRegistration("keys", sp => sp.GetRequiredService<KeyRegistry>(), HealthStatus.Degraded, []));
        services.AddHostedService<OpenAccessGuard>();

        services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        services.AddAuthorizationBuilder()
            .AddPolicy(CallerPolicy, policy => policy.RequireAuthenticatedUser())
            .AddPolicy(AdminPolicy, policy => policy.RequireRole(ApiKeyAuthenticationHandler.AdminRole))
            .AddPolicy(LoopbackOrAdminPolicy, policy => policy.RequireAssertion(context =>
                context.User.IsInRole(ApiKeyAuthenticationHandler.AdminRole)
                || (context.Resource is HttpContext http && http.Connection.RemoteIpAddress is { } address && System.Net.IPAddress.IsLoopback(address))));
        return builder;
    }
}
