using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Security;

/// <summary>What every response carries, what it never carries, and who may call from a browser.</summary>
public sealed class HardeningTests : GatewayTest
{
    private const string MasterKey = "sk-master-hardening-7e41c09b";

    protected override Dictionary<string, string?> Settings => new()
    {
        ["LITELLM_MASTER_KEY"] = MasterKey,
        // The failures provoked here (each retried once) must not open the breakers the last request needs.
        ["router_settings:allowed_fails"] = "10",
    };

    [Fact]
    public async Task EveryResponseCarriesTheSecurityHeadersAndNoServerHeader()
    {
        using var client = Gateway.CreateClient(MasterKey);
        using var models = await client.GetAsync("/v1/models");
        using var unknown = await client.GetAsync("/v1/nowhere");
        using var invalid = await client.PostAsync("/v1/chat/completions", GatewayHost.Json("{}"));
        using var unauthenticated = await Client.GetAsync("/v1/models");
        using var completion = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        using var stream = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));

        foreach (var response in new[] { models, unknown, invalid, unauthenticated, completion, stream })
        {
            var what = $"{response.RequestMessage!.Method} {response.RequestMessage.RequestUri!.AbsolutePath} → {(int)response.StatusCode}";
            Assert.True(response.Headers.Server.Count == 0, what + " has a Server header");
            Assert.Equal(["nosniff"], response.Headers.GetValues("X-Content-Type-Options"));
            Assert.Equal(["DENY"], response.Headers.GetValues("X-Frame-Options"));
            Assert.Equal(["no-referrer"], response.Headers.GetValues("Referrer-Policy"));
            Assert.Contains("frame-ancestors 'none'", response.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
        }
        foreach (var answer in new[] { models, unknown, invalid, unauthenticated, completion })
        {
            Assert.True(answer.Headers.CacheControl!.NoStore, $"{answer.RequestMessage!.RequestUri} is cacheable");
        }
        // A stream keeps the SSE convention (no-cache) and is not cached either.
        Assert.True(stream.Headers.CacheControl!.NoCache);
        Assert.Equal(HttpStatusCode.OK, completion.StatusCode);
    }

    [Fact]
    public async Task CorsIsOffWithoutAnAllowList()
    {
        using var preflight = new HttpRequestMessage(HttpMethod.Options, "/v1/chat/completions")
        {
            Headers = { { "Origin", "https://app.example.com" }, { "Access-Control-Request-Method", "POST" }, { "Access-Control-Request-Headers", "authorization,content-type" } },
        };
        using var response = await Client.SendAsync(preflight);
        Assert.False(response.Headers.Contains("Access-Control-Allow-Origin"));

        using var post = new HttpRequestMessage(HttpMethod.Post, "/v1/models") { Headers = { { "Origin", "https://app.example.com" } } };
        using var answer = await Client.SendAsync(post);
        Assert.False(answer.Headers.Contains("Access-Control-Allow-Origin"));
    }

    [Fact]
    public async Task CorsAnswersOnlyTheListedOrigins()
    {
        await using var gateway = await GatewayHost.StartAsync(new()
        {
            ["LITELLM_MASTER_KEY"] = MasterKey,
            ["Onyx:Cors:AllowedOrigins:0"] = "https://app.example.com",
        });
        using var client = gateway.CreateClient();

        using var allowed = await client.SendAsync(Preflight("https://app.example.com"));
        Assert.Equal(HttpStatusCode.NoContent, allowed.StatusCode);
        Assert.Equal(["https://app.example.com"], allowed.Headers.GetValues("Access-Control-Allow-Origin"));
        Assert.Contains("authorization", string.Join(',', allowed.Headers.GetValues("Access-Control-Allow-Headers")), StringComparison.OrdinalIgnoreCase);

        using var other = await client.SendAsync(Preflight("https://evil.example.net"));
        Assert.False(other.Headers.Contains("Access-Control-Allow-Origin"));

        using var call = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = GatewayHost.Json(GatewayHost.ChatBody()),
            Headers = { { "Origin", "https://app.example.com" }, { "Authorization", "Bearer " + MasterKey } },
        };
        using var answer = await client.SendAsync(call);
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.Equal(["https://app.example.com"], answer.Headers.GetValues("Access-Control-Allow-Origin"));
        Assert.Contains("x-onyx-deployment", string.Join(',', answer.Headers.GetValues("Access-Control-Expose-Headers")), StringComparison.Ordinal);

        static HttpRequestMessage Preflight(string origin) => new(HttpMethod.Options, "/v1/chat/completions")
        {
            Headers = { { "Origin", origin }, { "Access-Control-Request-Method", "POST" }, { "Access-Control-Request-Headers", "authorization,content-type" } },
        };
    }

    [Fact]
    public async Task AnOriginThatIsNotAnOriginStopsTheStart()
    {
        var failure = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAsync(new() { ["Onyx:Cors:AllowedOrigins:0"] = "https://app.example.com/path" }));
        Assert.Contains("Onyx:Cors:AllowedOrigins", failure.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TransportLimitsHaveTheGatewaysDefaultsAndFollowKestrelsConfiguration()
    {
        var limits = Gateway.Services.GetRequiredService<IOptions<KestrelServerOptions>>().Value.Limits;
        Assert.Equal(TimeSpan.FromSeconds(10), limits.RequestHeadersTimeout);
        Assert.Equal(TimeSpan.FromSeconds(120), limits.KeepAliveTimeout);
        Assert.Equal(10_000, limits.MaxConcurrentConnections);
        Assert.Equal(32 * 1024, limits.MaxRequestHeadersTotalSize);
        Assert.Equal(240, limits.MinRequestBodyDataRate!.BytesPerSecond);
        Assert.Equal(TimeSpan.FromSeconds(5), limits.MinRequestBodyDataRate.GracePeriod);
        Assert.Equal(4 * 1024 * 1024, limits.MaxRequestBodySize);

        await using var tuned = await GatewayHost.StartAsync(new()
        {
            ["Kestrel:Limits:MaxConcurrentConnections"] = "50",
            ["Kestrel:Limits:RequestHeadersTimeout"] = "00:00:03",
            ["Kestrel:Limits:KeepAliveTimeout"] = "00:00:30",
            ["Kestrel:Limits:MinRequestBodyDataRate:GracePeriod"] = "00:00:02",
            ["Kestrel:Limits:Http2:MaxStreamsPerConnection"] = "20",
            ["Onyx:Limits:MaxRequestBodyBytes"] = "65536",
        });
        var set = tuned.Services.GetRequiredService<IOptions<KestrelServerOptions>>().Value.Limits;
        Assert.Equal(50, set.MaxConcurrentConnections);
        Assert.Equal(TimeSpan.FromSeconds(3), set.RequestHeadersTimeout);
        Assert.Equal(TimeSpan.FromSeconds(30), set.KeepAliveTimeout);
        Assert.Equal(240, set.MinRequestBodyDataRate!.BytesPerSecond);
        Assert.Equal(TimeSpan.FromSeconds(2), set.MinRequestBodyDataRate.GracePeriod);
        Assert.Equal(20, set.Http2.MaxStreamsPerConnection);
        Assert.Equal(65536, set.MaxRequestBodySize);
    }

    [Fact]
    public async Task OversizedHeadersAre431()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { { "x-padding", new string('p', 40 * 1024) } } };
        using var response = await Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, response.StatusCode);
        using var after = await Gateway.CreateClient(MasterKey).GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
    }

    [Fact]
    public async Task NoSecretReachesAClientOrALogEvenWhenTheUpstreamEchoesThem()
    {
        var responses = new List<string>();
        using var admin = Gateway.CreateClient(MasterKey);
        using var generated = await admin.PostAsync("/key/generate", GatewayHost.Json("""{"user_id":"team-s"}"""));
        var key = (string)JsonNode.Parse(await generated.Content.ReadAsStringAsync())!["key"]!;
        using var user = Gateway.CreateClient(key);

        // Providers that echo the Authorization header they got, the URL and the host back in their errors (the
        // caller's key never goes upstream, so they cannot echo that: asserted below).
        var primaryUrl = Gateway.Primary.ChatUrl.ToString();
        var fallbackUrl = Gateway.Fallback.ChatUrl.ToString();
        string Echo(string url, string? authorization = "Bearer " + GatewayHost.TogetherKey) =>
            $"Invalid request. Authorization: {authorization}; POST {url}; host {new Uri(url).Authority}";
        Gateway.Primary.Fault = FakeFault.Status(400, new JsonObject { ["error"] = new JsonObject { ["message"] = Echo(primaryUrl), ["type"] = "invalid_request_error" } }.ToJsonString());
        using (var rejected = await user.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            Assert.Equal(HttpStatusCode.BadRequest, rejected.StatusCode);
            responses.Add(await Describe(rejected));
        }

        Gateway.Primary.Fault = FakeFault.Status(500, new JsonObject { ["error"] = new JsonObject { ["message"] = Echo(primaryUrl) } }.ToJsonString());
        Gateway.Fallback.Fault = FakeFault.Status(500, new JsonObject { ["error"] = Echo(fallbackUrl, "none") }.ToJsonString());
        using (var failed = await user.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.StatusCode);
            responses.Add(await Describe(failed));
        }
        using (var streamFailed = await admin.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true))))
        {
            responses.Add(await Describe(streamFailed));
        }
        Gateway.Primary.Fault = FakeFault.None;
        Gateway.Fallback.Fault = FakeFault.None;
        using (var ok = await user.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            responses.Add(await Describe(ok));
        }
        using (var info = await user.GetAsync("/key/info"))
        {
            responses.Add(await Describe(info));
        }
        using (var health = await Client.GetAsync("/health"))
        {
            responses.Add(await Describe(health));
        }
        using (var wrong = Gateway.CreateClient(key + "x"))
        using (var refused = await wrong.GetAsync("/v1/models"))
        {
            responses.Add(await Describe(refused));
        }
        // Six chat calls reached the primary (rejected; failed and failed stream, each asked twice; answered), each with
        // the provider's key only.
        Assert.Equal(6, Gateway.Primary.Requests.Count);
        Assert.All(Gateway.Primary.Requests, r => Assert.Equal("Bearer " + GatewayHost.TogetherKey, r.Authorization));

        var secrets = new[] { GatewayHost.TogetherKey, MasterKey, key };
        var internalAddresses = new[] { primaryUrl, fallbackUrl, Gateway.Primary.RootUrl.Authority, Gateway.Fallback.RootUrl.Authority };
        foreach (var seen in responses)
        {
            Assert.False(secrets.Any(secret => seen.Contains(secret, StringComparison.Ordinal)), "A secret in a response: " + seen);
            Assert.False(internalAddresses.Any(address => seen.Contains(address, StringComparison.OrdinalIgnoreCase)), "An internal address in a response: " + seen);
        }
        // The upstream's message still reaches the client, summarized.
        Assert.Contains("Invalid request", responses[0], StringComparison.Ordinal);
        Assert.Contains("[redacted]", responses[0], StringComparison.Ordinal);

        var logged = Gateway.Logs.Records.Select(r => string.Join('\n',
            [r.Message, r.Exception?.ToString() ?? "", .. r.Fields.Select(f => $"{f.Key}={f.Value}")])).ToList();
        Assert.NotEmpty(logged);
        Assert.Contains(logged, l => l.Contains("Invalid request", StringComparison.Ordinal));
        foreach (var record in logged)
        {
            Assert.False(secrets.Any(secret => record.Contains(secret, StringComparison.Ordinal)), "A secret in a log record: " + record);
        }

        static async Task<string> Describe(HttpResponseMessage response) =>
            string.Join('\n', response.Headers.Concat(response.Content.Headers).Select(h => $"{h.Key}: {string.Join(',', h.Value)}"))
            + "\n" + await response.Content.ReadAsStringAsync();
    }
}
