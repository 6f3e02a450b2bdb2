using System.Collections.Frozen;
using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.Json;
using Onyx.Gateway.Auth;
using Onyx.Gateway.Model;

namespace Onyx.Gateway.Api;

/// <summary>
/// The fields of a <c>/key/generate</c> or <c>/key/update</c> body, as LiteLLM names them, each checked; a field this
/// gateway does not act on is refused by name rather than accepted and ignored. Which fields a body gave is kept: an
/// update changes only those, and a field given as <c>null</c> is removed.
/// </summary>
internal sealed class KeyFields
{
    private const string Common = "key_alias, models, rpm_limit, tpm_limit, max_parallel_requests, duration, expires, metadata, "
        + "max_budget, budget_duration, soft_budget, model_max_budget";

    /// <summary>What <c>/key/generate</c> takes.</summary>
    public static readonly FrozenSet<string> Generate = Names("user_id, " + Common);

    /// <summary>What <c>/key/update</c> takes.</summary>
    public static readonly FrozenSet<string> Update = Names("key, " + Common);

    private readonly HashSet<string> _given = new(StringComparer.Ordinal);

    public string? Key { get; private set; }

    public string? UserId { get; private set; }

    public bool Has(params string[] names) => names.Any(_given.Contains);

    private string? _keyAlias;
    private List<string>? _models;
    private int? _rpm;
    private int? _tpm;
    private int? _maxParallel;
    private DateTimeOffset? _expires;
    private JsonObject? _metadata;
    private decimal? _maxBudget;
    private string? _budgetDuration;
    private decimal? _softBudget;
    private Dictionary<string, ModelBudget>? _modelMaxBudget;

    /// <summary>The record with the given fields set (a field given as null removed); the others as they were.</summary>
    public ApiKeyRecord ApplyTo(ApiKeyRecord record) => record with
    {
        KeyAlias = Has("key_alias") ? _keyAlias : record.KeyAlias,
        Models = Has("models") ? _models ?? [] : record.Models,
        RpmLimit = Has("rpm_limit") ? _rpm : record.RpmLimit,
        TpmLimit = Has("tpm_limit") ? _tpm : record.TpmLimit,
        MaxParallelRequests = Has("max_parallel_requests") ? _maxParallel : record.MaxParallelRequests,
        Expires = Has("duration", "expires") ? _expires : record.Expires,
        Metadata = Has("metadata") ? _metadata : record.Metadata,
        MaxBudget = Has("max_budget") ? _maxBudget : record.MaxBudget,
        BudgetDuration = Has("budget_duration") ? _budgetDuration : record.BudgetDuration,
        SoftBudget = Has("soft_budget") ? _softBudget : record.SoftBudget,
        ModelMaxBudget = Has("model_max_budget") ? _modelMaxBudget : record.ModelMaxBudget,
    };

    public static (KeyFields Fields, OpenAiErrorResult? Error) Parse(JsonElement body, FrozenSet<string> allowed, RoutingTable routing, DateTimeOffset now)
    {
        var fields = new KeyFields();
        if (body.ValueKind != JsonValueKind.Object)
        {
            return (fields, null);
        }
        foreach (var property in body.EnumerateObject())
        {
            var name = property.Name;
            if (!allowed.Contains(name))
            {
                return (fields, name == "user_id"
                    ? KeysApi.Invalid("A key's 'user_id' cannot change: its limits and budget are counted under its user. Generate a new key instead.", name)
                    : KeysApi.Unknown(name, string.Join(", ", allowed.Order(StringComparer.Ordinal))));
            }
            fields._given.Add(name);
            var error = fields.Read(name, property.Value, routing, now);
            if (error is not null)
            {
                return (fields, KeysApi.Invalid(error, name));
            }
        }
        if (fields.Has("duration") && fields.Has("expires"))
        {
            return (fields, KeysApi.Invalid("Give 'duration' or 'expires', not both.", "expires"));
        }
        return (fields, null);
    }

    /// <summary>Reads one field; returns why it is wrong, or null.</summary>
    private string? Read(string name, JsonElement value, RoutingTable routing, DateTimeOffset now)
    {
        var isNull = value.ValueKind == JsonValueKind.Null;
        switch (name)
        {
            case "key":
                Key = value.ValueKind == JsonValueKind.String ? value.GetString() : null;
                return string.IsNullOrEmpty(Key) ? "'key' must be the key to update, or its token." : null;
            case "user_id":
                UserId = value.ValueKind == JsonValueKind.String ? value.GetString() : null;
                return UserId is { Length: > 0 and <= 256 } && !string.IsNullOrWhiteSpace(UserId) ? null : "'user_id' must be a non-empty string of at most 256 characters.";
            case "key_alias":
                _keyAlias = value.ValueKind == JsonValueKind.String ? value.GetString() : null;
                return isNull || _keyAlias is { Length: <= 256 } ? null : "'key_alias' must be a string of at most 256 characters.";
            case "models":
                if (isNull)
                {
                    return null;
                }
                if (value.ValueKind != JsonValueKind.Array || value.EnumerateArray().Any(m => m.ValueKind != JsonValueKind.String))
                {
                    return "'models' must be a list of the aliases the key may use.";
                }
                _models = [.. value.EnumerateArray().Select(m => m.GetString()!)];
                return _models.FirstOrDefault(m => !routing.TryGetChain(m, out _)) is { } unknown
                    ? $"'models' names '{unknown}', which this gateway does not serve."
                    : null;
            case "rpm_limit":
                return Limit(value, name, out _rpm);
            case "tpm_limit":
                return Limit(value, name, out _tpm);
            case "max_parallel_requests":
                return Limit(value, name, out _maxParallel);
            case "duration":
                if (isNull)
                {
                    return null;
                }
                if (value.ValueKind != JsonValueKind.String || !KeysApi.TryParseDuration(value.GetString()!, out var span))
                {
                    return "'duration' must be a number and a unit: s, m, h or d (e.g. \"30d\").";
                }
                _expires = now + span;
                return null;
            case "expires":
                if (isNull)
                {
                    return null;
                }
                if (value.ValueKind != JsonValueKind.String
                    || !DateTimeOffset.TryParse(value.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var expires))
                {
                    return "'expires' must be an ISO 8601 time (\"2026-12-31T00:00:00Z\").";
                }
                _expires = expires;
                return null;
            case "metadata":
                if (isNull)
                {
                    return null;
                }
                if (value.ValueKind != JsonValueKind.Object)
                {
                    return "'metadata' must be a JSON object.";
                }
                _metadata = JsonNode.Parse(value.GetRawText())!.AsObject();
                return null;
            case "max_budget":
                return Usd(value, name, out _maxBudget);
            case "soft_budget":
                return Usd(value, name, out _softBudget);
            case "budget_duration":
                _budgetDuration = value.ValueKind == JsonValueKind.String ? value.GetString() : null;
                return isNull || BudgetDurations.IsValid(_budgetDuration) ? null : $"'budget_duration' must be {BudgetDurations.Expected}.";
            case "model_max_budget":
                if (isNull)
                {
                    return null;
                }
                (_modelMaxBudget, var error) = ModelBudgets(value, alias => routing.TryGetChain(alias, out _));
                return error;
            default:
                return $"'{name}' is not implemented.";
        }
    }

    /// <summary>
    /// LiteLLM's <c>model_max_budget</c>: <c>{"alias": {"budget_limit": 0.5, "time_period": "1d"}}</c> (LiteLLM also
    /// takes <c>max_budget</c> and <c>budget_duration</c> for those two). Its per-model <c>rpm_limit</c>/<c>tpm_limit</c>
    /// are refused: this gateway does not limit rates per model within a key.
    /// </summary>
    internal static (Dictionary<string, ModelBudget>? Budgets, string? Error) ModelBudgets(JsonElement value, Func<string, bool> isAlias)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            return (null, "'model_max_budget' must be an object: {\"<alias>\": {\"budget_limit\": <USD>, \"time_period\": \"1d\"}}.");
        }
        var budgets = new Dictionary<string, ModelBudget>(StringComparer.Ordinal);
        foreach (var model in value.EnumerateObject())
        {
            var at = $"model_max_budget.{model.Name}";
            if (!isAlias(model.Name))
            {
                return (null, $"'model_max_budget' names '{model.Name}', which this gateway does not serve.");
            }
            if (model.Value.ValueKind != JsonValueKind.Object)
            {
                return (null, $"'{at}' must be an object: {{\"budget_limit\": <USD>, \"time_period\": \"1d\"}}.");
            }
            decimal? limit = null;
            string? period = null;
            foreach (var field in model.Value.EnumerateObject())
            {
                switch (field.Name)
                {
                    case "budget_limit" or "max_budget":
                        if (limit is not null)
                        {
                            return (null, $"'{at}' gives its budget twice (budget_limit and max_budget): give one.");
                        }
                        if (field.Value.ValueKind != JsonValueKind.Number || !field.Value.TryGetDecimal(out var usd) || usd < 0)
                        {
                            return (null, $"'{at}.{field.Name}' must be a number of US dollars, 0 or more.");
                        }
                        limit = usd;
                        break;
                    case "time_period" or "budget_duration":
                        if (period is not null)
                        {
                            return (null, $"'{at}' gives its window twice (time_period and budget_duration): give one.");
                        }
                        period = field.Value.ValueKind == JsonValueKind.String ? field.Value.GetString() : null;
                        if (field.Value.ValueKind != JsonValueKind.Null && !BudgetDurations.IsValid(period))
                        {
                            return (null, $"'{at}.{field.Name}' must be {BudgetDurations.Expected}.");
                        }
                        break;
                    case "rpm_limit" or "tpm_limit":
                        return (null, $"'{at}.{field.Name}' is not implemented: this gateway limits rates per key and user, not per model within a key.");
                    default:
                        return (null, $"'{at}.{field.Name}' is not a field this gateway implements; it takes budget_limit and time_period.");
                }
            }
            if (limit is not { } budgetLimit)
            {
                return (null, $"'{at}' needs 'budget_limit' (US dollars).");
            }
            budgets[model.Name] = new ModelBudget { BudgetLimit = budgetLimit, TimePeriod = period };
        }
        return (budgets, null);
    }

    private static string? Limit(JsonElement value, string name, out int? limit)
    {
        limit = null;
        if (value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out var n) || n < 0)
        {
            return $"'{name}' must be a whole number, 0 or more (0: no limit).";
        }
        limit = n;
        return null;
    }

    private static string? Usd(JsonElement value, string name, out decimal? usd)
    {
        usd = null;
        if (value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDecimal(out var amount) || amount < 0 || amount > 10_000_000m)
        {
            return $"'{name}' must be a number of US dollars, from 0 to 10000000.";
        }
        usd = amount;
        return null;
    }

    private static FrozenSet<string> Names(string list) =>
        list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToFrozenSet(StringComparer.Ordinal);
}
