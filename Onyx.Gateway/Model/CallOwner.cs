namespace Onyx.Gateway.Model;

/// <summary>
/// Who a call is made for (and from which address, for the audit trail), and what to tell when it ends: its total
/// tokens, for the rate limiter, and what it cost in US dollars (null: no deployment it used has a price), for its
/// key's spend and budget.
/// </summary>
internal sealed record CallOwner(string? UserId, string? KeyName, Action<long, decimal?>? Finished = null, string? ClientAddress = null)
{
    /// <summary>The API key's hash (none for the master key or an open gateway).</summary>
    public string? KeyHash { get; init; }

    public static CallOwner Unknown { get; } = new(null, null);
}
