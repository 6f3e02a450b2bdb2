using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Onyx.Gateway.Cluster;
using Onyx.Gateway.Tests.RateLimiting;
using Onyx.Gateway.Tests.TestHost;
using StackExchange.Redis;

namespace Onyx.Gateway.Tests.Auth;

/// <summary>Generated keys on a replica whose Redis goes away and comes back.</summary>
public sealed class KeysAcrossRedisOutagesTests : ReplicasOnOneRedis
{
    protected override Dictionary<string, string?> ReplicaSettings => new()
    {
        ["LITELLM_MASTER_KEY"] = TestKeys.MasterKey,
        ["Onyx:Redis:PingInterval"] = "00:00:00.100",
    };

    [Fact]
    public async Task AKeyDeletedWhileTheReplicaCouldNotHearIsRefusedOnceRedisIsBack()
    {
        // No timed ping: the outage below ends when the test ends it, not at the next ping, however slow the machine;
        // and the lookup after it is decided in Redis (past its bound, an unknown key is a 503, not the 401 checked here).
        var gateway = await StartReplicaAsync(DecidedInRedis(new() { ["Onyx:Redis:PingInterval"] = "00:10:00" }));
        var key = await TestKeys.GenerateAsync(gateway, """{"user_id":"deleted-meanwhile"}""");
        using var client = gateway.CreateClient(key);
        using (var ok = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        // The replica counts Redis as down (as after 3 slow answers) while the key is deleted without a notice
        // reaching it, as another replica's deletion during an outage would be.
        var earlierUps = gateway.Logs.Records.Where(r => r.EventId == 4011).ToHashSet();
        gateway.Services.GetRequiredService<RedisConnectionWatch>().ReportDown("test", "told so");
        await using (var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString))
        {
            Assert.True(await redis.GetDatabase().KeyDeleteAsync("onyx:key:" + Onyx.Gateway.Auth.ApiKeys.Hash(key)));
        }
        // Meanwhile the key it has cached still works (the cache is the fallback).
        using (var cached = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            Assert.Equal(HttpStatusCode.OK, cached.StatusCode);
        }
        // Redis is back: the replica's command connection is cut, the multiplexer restores it and the watch pings on
        // the restore. Not the start-up's "up": an "up" after the outage.
        await using (var admin = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString + ",allowAdmin=true"))
        {
            await admin.GetDatabase().ExecuteAsync("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes");
        }
        await gateway.Logs.WaitForAsync(r => r.EventId == 4011 && !earlierUps.Contains(r), TimeSpan.FromSeconds(20));

        using var refused = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
    }
}
