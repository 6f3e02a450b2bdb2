namespace Onyx.Gateway.Auth;

/// <summary>
/// Who is calling, as authentication found it: the user the limits apply to, the key (by name and hash, never
/// the key), the aliases it may use and its own limits (null: the defaults).
/// </summary>
internal sealed record Caller
{
    // First: the static callers below are built with it.
    private static readonly IReadOnlySet<string> EmptyModels = new HashSet<string>();

    /// <summary>The user of an open gateway (no key configured, loopback only).</summary>
    public const string AnonymousUser = "anonymous";

    /// <summary>The user the master key counts as.</summary>
    public const string MasterUser = "master";

    public required string UserId { get; init; }

    public string? KeyName { get; init; }

    public string? KeyHash { get; init; }

    public bool IsMaster { get; init; }

    public IReadOnlySet<string> Models { get; init; } = EmptyModels;

    public int? RpmLimit { get; init; }

    public int? TpmLimit { get; init; }

    public int? MaxParallelRequests { get; init; }

    /// <summary>The key's budget (null: none).</summary>
    public KeyBudget? Budget { get; init; }

    public static Caller Anonymous { get; } = new() { UserId = AnonymousUser };

    public static Caller Master { get; } = new() { UserId = MasterUser, KeyName = "master key", IsMaster = true };

    public static Caller For(ApiKeyRecord key) => new()
    {
        UserId = key.UserId,
        KeyName = key.KeyName,
        KeyHash = key.Hash,
        Models = key.Models.Count == 0 ? EmptyModels : key.Models.ToHashSet(StringComparer.Ordinal),
        RpmLimit = key.RpmLimit,
        TpmLimit = key.TpmLimit,
        MaxParallelRequests = key.MaxParallelRequests,
        Budget = KeyBudget.Of(key),
    };

    /// <summary>Whether the key may call <paramref name="alias"/> (a key without a model list may call every alias).</summary>
    public bool MayUse(string alias) => Models.Count == 0 || Models.Contains(alias);
}

internal static class CallerExtensions
{
    /// <summary>The caller authentication put on the request; anonymous when the endpoint is open.</summary>
    public static Caller GetCaller(this HttpContext context) => context.Features.Get<Caller>() ?? Caller.Anonymous;
}
