using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Onyx.AppHost.Configuration;

namespace Onyx.Gateway.Tests.AppHost;

/// <summary>
/// The Redis the AppHost runs in containers mode keeps its data, as the app model hands it to the container engine (no
/// engine is needed to read it): a data volume, and an append-only file synced every second unless set stricter.
/// </summary>
public sealed class RedisPersistenceTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData(null, "everysec")]
    [InlineData("always", "always")]
    public async Task ContainersModeRunsRedisOnAVolumeWithAnAppendOnlyFile(string? appendFsync, string expected)
    {
        string[] args = appendFsync is null
            ? ["--Onyx:Infrastructure=containers"]
            : ["--Onyx:Infrastructure=containers", $"--{OnyxConfiguration.RedisAppendFsync}={appendFsync}"];
        using var cancel = new CancellationTokenSource(Timeout);
        await using var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Onyx_AppHost>(args,
            (options, _) => options.DisableDashboard = true, cancel.Token);
        var redis = builder.Resources.OfType<RedisResource>().Single();

        Assert.True(redis.TryGetAnnotationsOfType<ContainerMountAnnotation>(out var mounts));
        var data = Assert.Single(mounts);
        Assert.Equal(ContainerMountType.Volume, data.Type);
        Assert.Equal("/data", data.Target);
        Assert.False(data.IsReadOnly);

        // However the integration passes redis-server its arguments (one shell string, or one by one), they are there.
        var configuration = await ExecutionConfigurationBuilder.Create(redis).WithArgumentsConfig()
            .BuildAsync(builder.ExecutionContext, NullLogger.Instance, cancel.Token).WaitAsync(Timeout);
        var arguments = string.Join(' ', configuration.Arguments.Select(a => a.Value));
        Assert.Contains($"--appendonly yes --appendfsync {expected}", arguments, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnAppendFsyncWeakerThanEverySecondStopsTheAppHostNamingTheKey()
    {
        using var cancel = new CancellationTokenSource(Timeout);
        var error = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await using var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Onyx_AppHost>(
                ["--Onyx:Infrastructure=containers", $"--{OnyxConfiguration.RedisAppendFsync}=no"],
                (options, _) => options.DisableDashboard = true, cancel.Token);
        });
        Assert.Contains("Onyx:Redis:AppendFsync must be 'everysec' or 'always', not 'no'", error.ToString(), StringComparison.Ordinal);
    }
}
