using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Tests.TestHost;
using StackExchange.Redis;

namespace Onyx.Gateway.Tests.Cluster;

/// <summary>
/// Redis named the LiteLLM way (<c>router_settings.redis_host</c>/<c>redis_port</c>/<c>redis_password</c>, or
/// <c>redis_url</c>) when Aspire names none; Aspire's <c>ConnectionStrings:redis</c> wins when both do.
/// </summary>
public sealed class RedisFromConfigFileTests
{
    private const string Password = "s3cret-redis-pass-7f1e";

    [Fact]
    public async Task RedisHostPortAndPasswordInRouterSettingsNameTheSharedRedisWithoutLoggingThePassword()
    {
        await using var redis = await RedisServerProcess.StartAsync(TimeSpan.FromSeconds(20), password: Password);
        await using var gateway = await GatewayHost.StartAsync(new()
        {
            ["router_settings:redis_host"] = "127.0.0.1",
            ["router_settings:redis_port"] = redis.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["router_settings:redis_password"] = "os.environ/ONYX_TEST_REDIS_PASSWORD",
            ["ONYX_TEST_REDIS_PASSWORD"] = Password,
            // Everything every library writes, the Redis client's own connection log included.
            ["Logging:LogLevel:Default"] = "Trace",
        });

        await using var check = await ConnectionMultiplexer.ConnectAsync($"{redis.ConnectionString},password={Password}");
        var replicas = await check.GetDatabase().HashGetAllAsync("onyx:replicas");
        Assert.Single(replicas);
        var notice = Assert.Single(gateway.Logs.Records, r => r.EventId == 1012);
        Assert.Equal(redis.ConnectionString, notice["Endpoint"]);
        Assert.Equal("router_settings:redis_host and router_settings:redis_port", notice["Keys"]);
        Assert.DoesNotContain(gateway.Logs.Records, r => r.EventId == 4003);
        Assert.DoesNotContain(gateway.Logs.Records, r => (r.Message + r.Exception + string.Join(" ", r.Fields.Values)).Contains(Password, StringComparison.Ordinal));
    }

    [Fact]
    public async Task AspiresConnectionStringWinsOverRouterSettingsAndTheStartLogSaysSo()
    {
        await using var aspire = await RedisServerProcess.StartAsync(TimeSpan.FromSeconds(20));
        await using var named = await RedisServerProcess.StartAsync(TimeSpan.FromSeconds(20));
        await using var gateway = await GatewayHost.StartAsync(new()
        {
            ["ConnectionStrings:redis"] = aspire.ConnectionString,
            ["router_settings:redis_url"] = $"redis://{named.ConnectionString}",
        });

        await using var onAspire = await ConnectionMultiplexer.ConnectAsync(aspire.ConnectionString);
        await using var onNamed = await ConnectionMultiplexer.ConnectAsync(named.ConnectionString);
        Assert.Single(await onAspire.GetDatabase().HashGetAllAsync("onyx:replicas"));
        Assert.False(await onNamed.GetDatabase().KeyExistsAsync("onyx:replicas"));
        Assert.Single(gateway.Logs.Records, r => r.EventId == 1013 && r.Level == LogLevel.Warning);
        Assert.DoesNotContain(gateway.Logs.Records, r => r.EventId == 1012);
    }

    [Theory]
    [InlineData("redis://:p%40ss@cache.internal:6380/2", "cache.internal:6380", null, "p@ss", false, 2)]
    [InlineData("rediss://onyx:pw@cache.internal", "cache.internal:6379", "onyx", "pw", true, null)]
    [InlineData("redis://127.0.0.1", "127.0.0.1:6379", null, null, false, null)]
    public void RedisUrlIsReadAsLiteLlmWritesIt(string url, string endpoint, string? user, string? password, bool ssl, int? database)
    {
        var redis = LiteLlmRedis.Read(Configuration(new() { [LiteLlmRedis.UrlKey] = url }), out var error);

        Assert.Null(error);
        Assert.NotNull(redis);
        Assert.Equal(endpoint, redis.EndPoint);
        Assert.Equal(user, redis.User);
        Assert.Equal(password, redis.Password);
        Assert.Equal(ssl, redis.Ssl);
        Assert.Equal(database, redis.Database);
        Assert.DoesNotContain("pw", redis.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("router_settings:redis_port", "99999", "router_settings:redis_port must be a port number")]
    [InlineData("router_settings:redis_url", "http://:hunter2@host", "router_settings:redis_url must be redis://")]
    [InlineData("router_settings:redis_password", "os.environ/ONYX_UNSET_REDIS_PASSWORD", "router_settings:redis_password refers to 'ONYX_UNSET_REDIS_PASSWORD', which is not set")]
    public void ABadRedisSettingStopsTheStartNamingItsKey(string key, string value, string expected)
    {
        var settings = new Dictionary<string, string?> { ["router_settings:redis_host"] = "127.0.0.1", [key] = value };
        if (key == LiteLlmRedis.UrlKey)
        {
            settings.Remove("router_settings:redis_host");
        }
        var configuration = Configuration(settings);
        var options = LiteLlmConfig.Bind("model_list: [{ model_name: a, litellm_params: { model: \"openai/x\", api_base: \"http://h/v1\" } }]");

        var failures = new LiteLlmOptionsValidator(configuration).Validate(null, options).Failures!.ToList();

        var failure = Assert.Single(failures);
        Assert.StartsWith(expected, failure, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", failure, StringComparison.Ordinal);
    }

    private static IConfiguration Configuration(Dictionary<string, string?> settings) => new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
}
