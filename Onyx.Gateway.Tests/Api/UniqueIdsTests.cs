using Onyx.Gateway.Model;
namespace Onyx.Gateway.Tests.Api;

public sealed class UniqueIdsTests
{
    [Fact]
    public void RequestIdsAre32LowercaseHexDigitsAndDoNotRepeat()
    {
        var ids = Enumerable.Range(0, 10_000).Select(_ => UniqueIds.NewId()).ToList();

        Assert.All(ids, id => Assert.Matches("^[0-9a-f]{32}$", id));
        Assert.Equal(ids.Count, ids.Distinct().Count());
    }

    [Fact]
    public void AuditIdsAreVersion7UuidsCarryingTheirTimestampLikeTheFrameworks()
    {
        var at = new DateTimeOffset(2026, 11, 26, 23, 30, 15, 123, TimeSpan.Zero);

        var id = UniqueIds.NewVersion7(at);

        var parsed = Guid.ParseExact(id, "N");
        Assert.Equal(7, parsed.Version);
        // RFC 9562's variant: the two high bits of byte 8 are 10 (the low two are random, as in Guid.CreateVersion7).
        Assert.Equal(0b10, parsed.Variant >> 2);
        // The first 48 bits are the Unix milliseconds, exactly where Guid.CreateVersion7 puts them.
        Assert.Equal(Guid.CreateVersion7(at).ToString("N")[..12], id[..12]);
        Assert.Equal(at.ToUnixTimeMilliseconds(), Convert.ToInt64(id[..12], 16));
    }

    [Fact]
    public void AuditIdsMadeLaterSortLater()
    {
        var start = new DateTimeOffset(2026, 11, 26, 0, 0, 0, TimeSpan.Zero);

        var ids = Enumerable.Range(0, 1_000).Select(i => UniqueIds.NewVersion7(start.AddMilliseconds(i))).ToList();

        Assert.Equal(ids, ids.Order(StringComparer.Ordinal));
        Assert.Equal(ids.Count, ids.Distinct().Count());
    }
}
