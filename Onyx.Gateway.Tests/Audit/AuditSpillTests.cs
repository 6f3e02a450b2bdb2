using System.Net;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Audit;

/// <summary>
/// The audit's files on disk belong to one deployment: a gateway whose Redis answers writes none; a spill file names
/// its trail and is replayed only into that trail; a standalone gateway's audit file is rotated at its bound and never
/// replayed into a gateway with Redis. (The spill file's bound: <see cref="AuditSpillBoundTests"/>.)
/// </summary>
public sealed class AuditSpillTests : ReplicasOnOneRedis, IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private readonly List<string> _directories = [];

    protected override Dictionary<string, string?> ReplicaSettings => new()
    {
        ["LITELLM_MASTER_KEY"] = TestKeys.MasterKey,
        ["Onyx:Audit:RetryInterval"] = "00:00:00.100",
    };

    [Fact]
    public async Task AGatewayWhoseRedisAnswersWritesNothingToDisk()
    {
        var directory = NewDirectory();
        var gateway = await StartReplicaAsync(new() { [GatewayHost.SpillDirectoryKey] = directory });
        using var admin = gateway.CreateClient(TestKeys.MasterKey);
        for (var i = 0; i < 5; i++)
        {
            using var ok = await admin.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: i % 2 == 1)));
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            await ok.Content.ReadAsStringAsync();
        }
        Assert.Equal(5, (await AuditTraffic.ReadAsync(admin, Redis.ConnectionString, 5)).Count);
        Assert.Empty(Directory.EnumerateFileSystemEntries(directory));

        // Nor when it stops: the queue goes to Redis.
        await gateway.DisposeAsync();
        Assert.Empty(Directory.EnumerateFileSystemEntries(directory));
    }

    [Fact]
    public async Task ASpillFileOfAnotherTrailIsLeftAloneAndItsRecordsStayOutOfThisTrail()
    {
        var directory = NewDirectory();
        // Another deployment's gateway, whose Redis (elsewhere) never answered, left its records in the directory.
        var otherRedis = $"127.0.0.1:{LoopbackPort.Free()}";
        await using (var other = await StartUnreachableAsync(otherRedis, directory))
        {
            await AuditTraffic.SendAsync(other, TestKeys.MasterKey, 3, "other");
        }
        var file = Assert.Single(Directory.GetFiles(directory));
        Assert.Equal($$"""{"onyx_audit_trail":"redis://{{otherRedis}}/0 onyx:{audit}"}""", (await AuditFiles.ReadLinesAsync(file))[0]);
        Assert.Equal(3, (await AuditFiles.ReadRecordsAsync(file)).Count);
        var left = await File.ReadAllBytesAsync(file);

        var gateway = await StartReplicaAsync(new() { [GatewayHost.SpillDirectoryKey] = directory });
        var leftAlone = Assert.Single(gateway.Logs.Records, r => r.EventId == 8013);
        Assert.Equal(1, leftAlone["Count"]);
        Assert.Equal(Path.GetFileName(file), leftAlone["Files"]);
        // A request of this trail: once its record is in, the writer has done any replay it was going to do.
        await AuditTraffic.SendAsync(gateway, TestKeys.MasterKey, 1, "mine");
        using var admin = gateway.CreateClient(TestKeys.MasterKey);
        Assert.Equal(["mine-0"], (await AuditTraffic.ReadAsync(admin, Redis.ConnectionString, 1)).Select(r => (string?)r!["request_id"]));
        Assert.DoesNotContain(gateway.Logs.Records, r => r.EventId is 8003 or 8007);
        Assert.Equal(left, await File.ReadAllBytesAsync(file));
    }

    [Fact]
    public async Task ASpillFileOfTheSameTrailNameIsReplayedFromAnotherRedisAddress()
    {
        // As under the AppHost, whose Redis gets a new port on each run: the trail is named, not addressed.
        var directory = NewDirectory();
        var trail = new Dictionary<string, string?> { ["Onyx:Audit:TrailName"] = "apphost-local" };
        await using (var before = await StartUnreachableAsync($"127.0.0.1:{LoopbackPort.Free()}", directory, trail))
        {
            await AuditTraffic.SendAsync(before, TestKeys.MasterKey, 3, "before");
        }
        Assert.Single(Directory.GetFiles(directory));

        var gateway = await StartReplicaAsync(new(trail) { [GatewayHost.SpillDirectoryKey] = directory });
        var replayed = await gateway.Logs.WaitForAsync(r => r.EventId == 8003, Deadline);
        Assert.Equal(3, replayed["Replayed"]);
        using var admin = gateway.CreateClient(TestKeys.MasterKey);
        Assert.Equal(["before-2", "before-1", "before-0"], (await AuditTraffic.ReadAsync(admin, Redis.ConnectionString, 3)).Select(r => (string?)r!["request_id"]));
        Assert.Empty(Directory.GetFiles(directory));
    }

    [Fact]
    public async Task AStandaloneGatewayRotatesItsFileAtItsBoundAndAGatewayWithRedisLeavesItAlone()
    {
        const int Total = 20;
        var directory = NewDirectory();
        var standalone = await GatewayHost.StartAsync(new()
        {
            ["LITELLM_MASTER_KEY"] = TestKeys.MasterKey,
            [GatewayHost.SpillDirectoryKey] = directory,
            ["Onyx:Audit:IncludeContent"] = "true",
            ["Onyx:Audit:File:MaxBytes"] = "65536",
            ["Onyx:Audit:File:MaxFiles"] = "2",
        });
        await using (standalone)
        {
            await AuditTraffic.SendAsync(standalone, TestKeys.MasterKey, Total, "standalone", AuditTraffic.LongPrompt);
        }

        // About 170 KB of records in 64 KiB files, two kept: the newest records, the oldest file deleted.
        Assert.Equal(["audit.1.jsonl", "audit.jsonl"], Directory.GetFiles(directory).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.All(Directory.GetFiles(directory), f => Assert.InRange(new FileInfo(f).Length, 1, 65536));
        var current = await AuditFiles.ReadRecordsAsync(Path.Combine(directory, "audit.jsonl"));
        var previous = await AuditFiles.ReadRecordsAsync(Path.Combine(directory, "audit.1.jsonl"));
        Assert.Contains($"\"request_id\":\"standalone-{Total - 1}\"", current[^1], StringComparison.Ordinal);
        Assert.DoesNotContain(previous.Concat(current), line => line.Contains("\"request_id\":\"standalone-0\"", StringComparison.Ordinal));
        Assert.True(standalone.Logs.Records.Count(r => r.EventId == 8014) >= 2, "two rotations at least, the second deleting the oldest file");
        var files = Directory.GetFiles(directory).ToDictionary(f => f, File.ReadAllBytes);

        // A gateway with Redis on the same directory replays none of it.
        var gateway = await StartReplicaAsync(new() { [GatewayHost.SpillDirectoryKey] = directory });
        var leftAlone = Assert.Single(gateway.Logs.Records, r => r.EventId == 8013);
        Assert.Equal(2, leftAlone["Count"]);
        await AuditTraffic.SendAsync(gateway, TestKeys.MasterKey, 1, "with-redis");
        using var admin = gateway.CreateClient(TestKeys.MasterKey);
        Assert.Equal(["with-redis-0"], (await AuditTraffic.ReadAsync(admin, Redis.ConnectionString, 1)).Select(r => (string?)r!["request_id"]));
        Assert.DoesNotContain(gateway.Logs.Records, r => r.EventId is 8003 or 8007);
        foreach (var (path, bytes) in files)
        {
            Assert.Equal(bytes, await File.ReadAllBytesAsync(path));
        }
    }

    public void Dispose()
    {
        // After the base class has stopped every gateway (xunit disposes IAsyncLifetime first).
        foreach (var directory in _directories)
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private string NewDirectory()
    {
        var directory = Directory.CreateTempSubdirectory("onyx-audit-files-").FullName;
        _directories.Add(directory);
        return directory;
    }

    /// <summary>A gateway of another deployment, whose Redis at <paramref name="redis"/> never answers: it spills everything.</summary>
    private static Task<GatewayHost> StartUnreachableAsync(string redis, string directory, Dictionary<string, string?>? settings = null)
    {
        var all = new Dictionary<string, string?>(settings ?? [])
        {
            ["ConnectionStrings:redis"] = redis,
            ["LITELLM_MASTER_KEY"] = TestKeys.MasterKey,
            [GatewayHost.SpillDirectoryKey] = directory,
        };
        return GatewayHost.StartAsync(all);
    }
}
