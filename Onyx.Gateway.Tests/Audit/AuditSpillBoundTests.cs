using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Audit;

/// <summary>
/// While Redis is away the spill file stops at its bound: the oldest records kept, the rest counted in
/// <c>onyx.audit.dropped</c> and logged once. It reads <c>/metrics</c>, whose audit counters see every gateway in this
/// process, so it runs alone, with the other metric tests.
/// </summary>
[Collection(MetricsCollection.Name)]
public sealed class AuditSpillBoundTests : ReplicasOnOneRedis, IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private readonly string _directory = Directory.CreateTempSubdirectory("onyx-audit-bound-").FullName;

    protected override Dictionary<string, string?> ReplicaSettings => new()
    {
        ["LITELLM_MASTER_KEY"] = TestKeys.MasterKey,
        ["Onyx:Audit:RetryInterval"] = "00:00:00.100",
    };

    [Fact]
    public async Task TheSpillFileStopsAtItsBoundKeepingTheOldestCountsTheRestAndSaysSoOnce()
    {
        const int Total = 12;
        var gateway = await StartReplicaAsync(new()
        {
            [GatewayHost.SpillDirectoryKey] = _directory,
            ["Onyx:Audit:SpillMaxBytes"] = "65536",
            ["Onyx:Audit:IncludeContent"] = "true",
        });
        using var audit = new MeterWatch(gateway, "Onyx.Gateway.Audit");
        var port = Redis.Port;
        await Redis.DisposeAsync();
        // Past the bound in a first burst; then, the writer idle, a second: a new append past the bound, not a new episode.
        await AuditTraffic.SendAsync(gateway, TestKeys.MasterKey, 10, "bounded", AuditTraffic.LongPrompt);
        Assert.True((await WaitForSpilledOrDroppedAsync(gateway, audit, 10)).Sum("onyx_audit_dropped_total") > 0, "the first burst should pass the bound");
        await AuditTraffic.SendAsync(gateway, TestKeys.MasterKey, Total - 10, "bounded", AuditTraffic.LongPrompt, first: 10);
        var scrape = await WaitForSpilledOrDroppedAsync(gateway, audit, Total);

        var file = Assert.Single(Directory.GetFiles(_directory));
        Assert.InRange(new FileInfo(file).Length, 1, 65536);
        var kept = (int)scrape.Sum("onyx_audit_records_total", ("onyx_audit_destination", "spill_file"));
        var dropped = (int)scrape.Sum("onyx_audit_dropped_total", ("onyx_audit_reason", "spill_full"));
        Assert.InRange(kept, 1, Total - 1);
        Assert.Equal(Total, kept + dropped);
        var full = Assert.Single(gateway.Logs.Records, r => r.EventId == 8011);
        Assert.Equal(65536L, full["MaxBytes"]);
        Assert.Equal(file, full["SpillPath"]);

        // Redis is back: the kept records, the oldest, are replayed; the episode ends with the count of the rest.
        Redis = await RedisServerProcess.StartAsync(Deadline, port);
        var ended = await gateway.Logs.WaitForAsync(r => r.EventId == 8012, Deadline);
        Assert.Equal((long)dropped, ended["Dropped"]);
        using var admin = gateway.CreateClient(TestKeys.MasterKey);
        var replayed = await AuditTraffic.ReadAsync(admin, Redis.ConnectionString, kept);
        Assert.Equal(Enumerable.Range(0, kept).Select(i => $"bounded-{i}").Reverse(), replayed.Select(r => (string?)r!["request_id"]));
        Assert.Single(gateway.Logs.Records, r => r.EventId == 8011);
    }

    // After the base class has stopped the gateway (xunit disposes IAsyncLifetime first).
    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>
    /// The <c>/metrics</c> scrape once <paramref name="count"/> records are either in the spill file or counted as
    /// dropped (as the writer records them, on <paramref name="audit"/>): the writer has dealt with them.
    /// </summary>
    private static async Task<Prometheus> WaitForSpilledOrDroppedAsync(GatewayHost gateway, MeterWatch audit, int count)
    {
        await audit.WaitUntilAsync(watch => Handled(watch) >= count, Deadline, $"{count} records spilled or dropped");
        Assert.Equal(count, Handled(audit));
        using var client = gateway.CreateClient();
        var scrape = Prometheus.Parse(await client.GetStringAsync("/metrics"));
        Assert.Equal(count, scrape.Sum("onyx_audit_records_total", ("onyx_audit_destination", "spill_file"))
            + scrape.Sum("onyx_audit_dropped_total", ("onyx_audit_reason", "spill_full")));
        return scrape;
    }

    private static long Handled(MeterWatch audit) =>
        audit.Total("onyx.audit.records", "onyx.audit.destination", "spill_file") + audit.Total("onyx.audit.dropped", "onyx.audit.reason", "spill_full");
}
