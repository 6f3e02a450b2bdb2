using Onyx.Gateway.Audit;

namespace Onyx.Gateway.Tests.Audit;

public sealed class AuditSpillFileTests : IDisposable
{
    private const string Trail = "redis://10.0.0.5:6379/0 onyx:{audit}";

    private readonly string _directory = Directory.CreateTempSubdirectory("onyx-spill-").FullName;

    [Fact]
    public void BatchesAppendedOneAfterAnotherReadBackInOrder()
    {
        var path = Path.Combine(_directory, "replica.jsonl");
        using (var file = AuditSpillFile.Create(path, trail: null))
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
        using var file = AuditSpillFile.Create(Path.Combine(_directory, "replica.jsonl"), Trail);
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

    [Fact]
    public void TheFirstLineNamesTheTrailAndIsNeverReplayedNorEmptied()
    {
        var path = Path.Combine(_directory, "spill.jsonl");
        using (var file = AuditSpillFile.Create(path, Trail))
        {
            file.Append([Record("a1"), Record("a2")]);
        }
        Assert.Equal("""{"onyx_audit_trail":"redis://10.0.0.5:6379/0 onyx:{audit}"}""", File.ReadLines(path).First());

        using (var reopened = AuditSpillFile.TryOpen(path)!)
        {
            Assert.Equal(Trail, reopened.Trail);
            var (records, end) = reopened.ReadNext(100, out var unreadable);
            Assert.Equal(["a1", "a2"], records.Select(r => r.AuditId));
            Assert.Equal(0, unreadable);
            reopened.Confirm(end);
            Assert.True(reopened.TryTruncate());
            Assert.False(reopened.HasPending);
        }
        // Emptied back to its header: still the trail's file.
        Assert.Equal(["""{"onyx_audit_trail":"redis://10.0.0.5:6379/0 onyx:{audit}"}"""], File.ReadAllLines(path));
        using var again = AuditSpillFile.TryOpen(path)!;
        Assert.Equal(Trail, again.Trail);
    }

    [Fact]
    public void AFileWithoutAHeaderNamesNoTrail()
    {
        var path = Path.Combine(_directory, "older.jsonl");
        using (var file = AuditSpillFile.Create(path, trail: null))
        {
            file.Append([Record("a1")]);
        }

        using var reopened = AuditSpillFile.TryOpen(path)!;
        Assert.Null(reopened.Trail);
        Assert.Equal(["a1"], reopened.ReadNext(10, out _).Records.Select(r => r.AuditId));
    }

    [Fact]
    public void AnAppendStopsAtTheBoundKeepingTheOldestAndSaysHowManyFit()
    {
        using var file = AuditSpillFile.Create(Path.Combine(_directory, "bounded.jsonl"), Trail);
        var header = file.Length;
        file.Append([Record("r0")]);
        var recordBytes = file.Length - header;
        var bound = file.Length + 2 * recordBytes + recordBytes / 2;

        Assert.Equal(2, file.Append([Record("r1"), Record("r2"), Record("r3")], bound));
        Assert.Equal(0, file.Append([Record("r4")], bound));

        Assert.True(file.Length <= bound);
        Assert.Equal(["r0", "r1", "r2"], file.ReadNext(10, out _).Records.Select(r => r.AuditId));
    }

    [Fact]
    public void AFileWithNoRecordTakesOneWhateverTheBound()
    {
        using var file = AuditSpillFile.Create(Path.Combine(_directory, "tiny.jsonl"), trail: null);

        Assert.Equal(1, file.Append([Record("big"), Record("next")], maxBytes: 10));
        Assert.Equal(["big"], file.ReadNext(10, out _).Records.Select(r => r.AuditId));
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static AuditRecord Record(string id) => AuditRecords.Sample(id);
}
