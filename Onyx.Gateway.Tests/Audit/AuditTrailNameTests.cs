using Onyx.Gateway.Audit;

namespace Onyx.Gateway.Tests.Audit;

/// <summary>The name a spill file gives its trail: the same for every replica of one deployment, different across them.</summary>
public sealed class AuditTrailNameTests
{
    private static readonly AuditOptions Defaults = new();

    [Fact]
    public void TheReplicasOfOneRedisAgreeWhateverTheirOptionsAndOrder()
    {
        var one = AuditTrail.For("Redis-A.internal:6379,redis-b.internal:6380,password=secret,abortConnect=false", Defaults);
        var other = AuditTrail.For("redis-b.internal:6380,redis-a.internal,connectTimeout=500", Defaults);

        Assert.Equal("redis://redis-a.internal:6379,redis-b.internal:6380/0 onyx:{audit}", one.Name);
        Assert.Equal(one.Name, other.Name);
        Assert.Equal(one.Key, other.Key);
        Assert.Matches("^[0-9a-f]{16}$", one.Key);
        Assert.DoesNotContain("secret", one.Name, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("redis-a.internal:6379,defaultDatabase=1")]
    [InlineData("redis-c.internal:6379")]
    [InlineData("127.0.0.1:6379")]
    public void AnotherDatabaseOrServerIsAnotherTrail(string connectionString)
    {
        var trail = AuditTrail.For("redis-a.internal:6379", Defaults);

        Assert.NotEqual(trail.Name, AuditTrail.For(connectionString, Defaults).Name);
        Assert.NotEqual(trail.Key, AuditTrail.For(connectionString, Defaults).Key);
    }

    [Fact]
    public void AnotherStreamIsAnotherTrail() =>
        Assert.Equal("redis://redis-a.internal:6379/0 onyx:{other}", AuditTrail.For("redis-a.internal:6379", new AuditOptions { StreamKey = "onyx:{other}" }).Name);

    [Fact]
    public void AConfiguredNameReplacesTheRedisTarget()
    {
        var options = new AuditOptions { TrailName = "prod-eu" };

        Assert.Equal("prod-eu onyx:{audit}", AuditTrail.For("127.0.0.1:41234", options).Name);
        Assert.Equal(AuditTrail.For("127.0.0.1:41234", options).Key, AuditTrail.For("127.0.0.1:50111", options).Key);
    }

    [Fact]
    public void ASentinelServiceIsNamedWithItsSentinels() =>
        Assert.Equal("redis://mymaster@sentinel-1:26379,sentinel-2:26379/0 onyx:{audit}",
            AuditTrail.For("sentinel-2:26379,sentinel-1:26379,serviceName=mymaster", Defaults).Name);
}
