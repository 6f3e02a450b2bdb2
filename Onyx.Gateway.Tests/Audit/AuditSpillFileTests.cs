using Onyx.Gateway.Audit;

namespace Onyx.Gateway.Tests.Audit;

public sealed class AuditSpillFileTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("onyx-spill-").FullName;

    [Fact]
    public void BatchesAppendedOneAfterAnotherReadBackInOrder()
    {
        var path = Path.Combine(_directory, "replica.jsonl");
        using (var file = AuditSpillFile.TryOpen(path)!)
        {
            file.Append([Record("a1"), Record("a2"), Record("a3")]);
            file.Append([Record("b1")]);
            var (records, end) = file.ReadNext(100, out var unreadable);

            Assert.Equal(["a1", "a2", "a3", "b1"], records.Select(r => r.AuditId));
            Assert.Equal(0, unreadable);
            Assert.Equal(new FileInfo(path).Length, end);
        }
        // One JSON line per record, readable without the gateway (the file is locked while the gateway holds it).
        Assert.Equal(4, File.ReadAllLines(path).Count(line => line.StartsWith("{\"audit_id\":", StringComparison.Ordinal)));
    }

    [Fact]
    public void ABatchLargerThanTheKeptBufferIsFollowedByWholeLines()
    {
        using var file = AuditSpillFile.TryOpen(Path.Combine(_directory, "replica.jsonl"))!;
        var burst = Enumerable.Range(0, 5_000).Select(i => Record($"burst-{i}")).ToList();

        file.Append(burst);
        file.Append([Record("after")]);
        var (records, _) = file.ReadNext(10_000, out var unreadable);

        Assert.True(new FileInfo(file.Path).Length > 1024 * 1024, "the burst should outgrow the kept buffer");
        Assert.Equal(5_001, records.Count);
        Assert.Equal(0, unreadable);
        Assert.Equal("burst-4999", records[^2].AuditId);
        Assert.Equal("after", records[^1].AuditId);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static AuditRecord Record(string id) => AuditRecords.Sample(id);
}
