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
        var aliases = options.ModelList.Select(m => m.ModelName).OfType<string>().ToHashSet(StringComparer.Ordinal);
        UnknownFields(configuration, errors);
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
            if (Budget(entry, at, aliases, errors) is not { } budget)
            {
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
                MaxBudget = entry.MaxBudget,
                BudgetDuration = entry.BudgetDuration,
                SoftBudget = entry.SoftBudget,
                ModelMaxBudget = budget.Count == 0 ? null : budget,
                CreatedAt = time.GetUtcNow(),
                Source = "config",
            };
        }

        return new AccessConfiguration(masterKey is null ? null : ApiKeys.Hash(masterKey), literal, keys);
    }

    /// <summary>The fields a configured key may have; any other stops the start (a budget field that silently did nothing was how keys once failed).</summary>
    private static readonly string[] ConfiguredKeyFields =
        ["key", "key_hash", "user_id", "key_alias", "models", "rpm_limit", "tpm_limit", "max_parallel_requests",
         "max_budget", "budget_duration", "soft_budget", "model_max_budget"];

    private static readonly string[] ModelBudgetFields = ["budget_limit", "max_budget", "time_period", "budget_duration"];

    private static void UnknownFields(IConfiguration configuration, List<string> errors)
    {
        foreach (var entry in configuration.GetSection("general_settings:keys").GetChildren())
        {
            foreach (var field in entry.GetChildren())
            {
                var at = $"general_settings:keys:{entry.Key}:{field.Key}";
                if (!ConfiguredKeyFields.Contains(field.Key, StringComparer.OrdinalIgnoreCase))
                {
                    errors.Add($"{at} is not a key field this gateway implements (it takes {string.Join(", ", ConfiguredKeyFields)}).");
                    continue;
                }
                if (!field.Key.Equals("model_max_budget", StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }
                foreach (var model in field.GetChildren())
                {
                    foreach (var budgetField in model.GetChildren())
                    {
                        if (budgetField.Key is "rpm_limit" or "tpm_limit")
                        {
                            errors.Add($"{at}:{model.Key}:{budgetField.Key} is not implemented: this gateway limits rates per key and user, not per model within a key.");
                        }
                        else if (!ModelBudgetFields.Contains(budgetField.Key, StringComparer.OrdinalIgnoreCase))
                        {
                            errors.Add($"{at}:{model.Key}:{budgetField.Key} is not a field this gateway implements (it takes budget_limit and time_period).");
                        }
                    }
                }
            }
        }
    }

    /// <summary>The key's budget fields, checked; null (with the errors added) when one is wrong.</summary>
    private static Dictionary<string, ModelBudget>? Budget(ConfiguredKey entry, string at, HashSet<string> aliases, List<string> errors)
    {
        var count = errors.Count;
        if (entry.MaxBudget < 0)
        {
            errors.Add($"{at}:max_budget must not be negative.");
        }
        if (entry.SoftBudget < 0)
        {
            errors.Add($"{at}:soft_budget must not be negative.");
        }
        if (entry.BudgetDuration is { } duration && !BudgetDurations.IsValid(duration))
        {
            errors.Add($"{at}:budget_duration must be {BudgetDurations.Expected}; got '{duration}'.");
        }
        var budgets = new Dictionary<string, ModelBudget>(StringComparer.Ordinal);
        foreach (var (alias, model) in entry.ModelMaxBudget)
        {
            var modelAt = $"{at}:model_max_budget:{alias}";
            if (!aliases.Contains(alias))
            {
                errors.Add($"{modelAt} names '{alias}', which is not a model_name in model_list.");
                continue;
            }
            if (model.BudgetLimit is not null && model.MaxBudget is not null || model.TimePeriod is not null && model.BudgetDuration is not null)
            {
                errors.Add($"{modelAt} gives a field twice (budget_limit and max_budget, or time_period and budget_duration): give one of each.");
                continue;
            }
            if ((model.BudgetLimit ?? model.MaxBudget) is not { } limit || limit < 0)
            {
                errors.Add($"{modelAt}:budget_limit is required, in US dollars, 0 or more.");
                continue;
            }
            var period = model.TimePeriod ?? model.BudgetDuration;
            if (period is not null && !BudgetDurations.IsValid(period))
            {
                errors.Add($"{modelAt}:time_period must be {BudgetDurations.Expected}; got '{period}'.");
                continue;
            }
            budgets[alias] = new ModelBudget { BudgetLimit = limit, TimePeriod = period };
        }
        return errors.Count == count ? budgets : null;
    }
}
