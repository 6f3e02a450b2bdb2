using Onyx.Gateway.Audit;
using Onyx.Gateway.Model;

namespace Onyx.Gateway.Tests.Audit;

/// <summary>Audit records for tests of the stores alone, without a gateway.</summary>
internal static class AuditRecords
{
    public static AuditRecord Sample(string id) => new()
    {
        AuditId = id,
        Timestamp = DateTimeOffset.UnixEpoch,
        RequestId = "req-" + id,
        Replica = "test-replica",
        Alias = "gpt-4o-mini",
        Stream = false,
        Status = 200,
        Success = true,
        Fallback = false,
        Attempts = [new AttemptStep("together/deepseek", "success", null, 200, 12.5)],
        Tokens = new TokenCounts(10, 20, 30, false),
        LatencyMs = 15.0,
    };
}
