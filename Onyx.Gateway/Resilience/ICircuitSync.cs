namespace Onyx.Gateway.Resilience;

/// <summary>
/// How a breaker shares its state with the gateway's other replicas (<see cref="RedisCircuitSync"/>). A gateway
/// without Redis has none, and its breakers are its own. No member may block or throw: the breaker calls the
/// announcements under its lock, and the claim on a request's path.
/// </summary>
internal interface ICircuitSync
{
    /// <summary>This replica opened (or re-opened) the breaker for <paramref name="cooldown"/>; returns the open's id.</summary>
    string Opened(string deploymentId, TimeSpan cooldown);

    /// <summary>This replica's probe succeeded: the breaker closes everywhere.</summary>
    void Closed(string deploymentId);

    /// <summary>This replica's probe ended with no verdict: another replica may probe at once.</summary>
    void ProbeAbandoned(string deploymentId);

    /// <summary>
    /// Asks whether this replica may send the half-open probe. <paramref name="knownOpenId"/> is the open this
    /// replica waited out: a newer one means the breaker was re-opened elsewhere and stays open.
    /// </summary>
    ValueTask<ProbeClaim> ClaimProbeAsync(string deploymentId, string? knownOpenId);
}

internal enum ProbeVerdict
{
    /// <summary>This replica sends the probe.</summary>
    Won,

    /// <summary>Another replica sends it; its verdict arrives by pub/sub, or its lease ends after <see cref="ProbeClaim.Remaining"/>.</summary>
    ProbingElsewhere,

    /// <summary>Another replica opened the breaker again (open <see cref="ProbeClaim.OpenId"/>), for <see cref="ProbeClaim.Remaining"/>.</summary>
    ReopenedElsewhere,

    /// <summary>Redis did not answer in time: this replica decides alone, as a gateway without Redis would.</summary>
    Unknown,
}

/// <param name="Replica">The replica holding the probe, or the one that re-opened the breaker.</param>
internal readonly record struct ProbeClaim(ProbeVerdict Verdict, TimeSpan Remaining = default, string? OpenId = null, string? Replica = null);
