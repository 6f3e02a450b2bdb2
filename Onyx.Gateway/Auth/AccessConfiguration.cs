using Onyx.Gateway.Configuration;

namespace Onyx.Gateway.Auth;

/// <summary>
/// The keys the configuration declares: the master key (<c>general_settings.master_key</c>, else
/// <c>LITELLM_MASTER_KEY</c>) and <c>general_settings.keys</c>. Only hashes are kept once built.
/// </summary>
internal sealed class AccessConfiguration
{
    public const string MasterKeyVariable = "LITELLM_MASTER_KEY";

    private AccessConfiguration(string? masterKeyHash, bool masterKeyIsLiteral, Dictionary<string, ApiKeyRecord> keys)
    {
        MasterKeyHash = masterKeyHash;
        MasterKeyIsLiteral = masterKeyIsLiteral;
        Keys = keys;
    }

    public string? MasterKeyHash { get; }

    /// <summary>The master key is written in the config file itself rather than referenced (worth a warning).</summary>
    public bool MasterKeyIsLiteral { get; }

    /// <summary>Keys declared in the config file, by hash.</summary>
    public IReadOnlyDictionary<string, ApiKeyRecord> Keys { get; }

    /// <summary>No key of any kind: the gateway serves anyone who can reach it (allowed on loopback only).</summary>
    public bool Open => MasterKeyHash is null && Keys.Count == 0;

    public static AccessConfiguration Build(LiteLlmOptions options, IConfiguration configuration, TimeProvider time, out List<string> errors)
    {
        errors = [];
        var general = options.GeneralSettings;
        var masterKey = EnvironmentReferences.Resolve(general.MasterKey, configuration)
            ?? EnvironmentReferences.Resolve(configuration[MasterKeyVariable], configuration);
        var literal = general.MasterKey is { } raw && EnvironmentReferences.Resolve(raw, configuration) == raw;
        if (masterKey is { Length: < 8 })
        {
            errors.Add("general_settings:master_key must be at least 8 characters long.");
        }

        var keys = new Dictionary<string, ApiKeyRecord>(StringComparer.Ordinal);
        for (var i = 0; i < general.Keys.Count; i++)
        {
            var at = $"general_settings:keys:{i}";
            var entry = general.Keys[i];
            string? hash = null;
            if (entry.Key is { } reference)
            {
                var key = EnvironmentReferences.Resolve(reference, configuration);
                if (key == reference)
                {
                    errors.Add($"{at}:key must reference a secret (os.environ/VAR or ${{VAR}}), not hold the key itself; or give key_hash.");
                    continue;
                }
                if (key is null)
                {
                    errors.Add($"{at}:key references '{reference}', which is not set.");
                    continue;
                }
                hash = ApiKeys.Hash(key);
            }
            else if (entry.KeyHash is { } given)
            {
                hash = given.Trim().ToLowerInvariant();
                if (!ApiKeys.IsHash(hash))
                {
                    errors.Add($"{at}:key_hash must be a SHA-256 in hex (64 characters).");
                    continue;
                }
            }
            else
            {
                errors.Add($"{at} needs key (a secret reference) or key_hash.");
                continue;
            }
            if (string.IsNullOrWhiteSpace(entry.UserId))
            {
                errors.Add($"{at}:user_id is required.");
                continue;
            }
            if (entry.RpmLimit < 0 || entry.TpmLimit < 0 || entry.MaxParallelRequests < 0)
            {
                errors.Add($"{at}: rpm_limit, tpm_limit and max_parallel_requests must not be negative.");
                continue;
            }
            keys[hash] = new ApiKeyRecord
            {
                Hash = hash,
                KeyName = entry.KeyAlias ?? $"config key {i}",
                KeyAlias = entry.KeyAlias,
                UserId = entry.UserId,
                Models = entry.Models,
                RpmLimit = entry.RpmLimit,
                TpmLimit = entry.TpmLimit,
                MaxParallelRequests = entry.MaxParallelRequests,
                CreatedAt = time.GetUtcNow(),
                Source = "config",
            };
        }

        return new AccessConfiguration(masterKey is null ? null : ApiKeys.Hash(masterKey), literal, keys);
    }
}
