using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Onyx.Gateway.Auth;

namespace Onyx.Gateway.Ui;

/// <summary>
/// The Keys page's form, turned into the body <c>/key/generate</c> or <c>/key/update</c> takes, so the console's keys
/// pass the same checks (<see cref="Api.KeyManagement"/>): a blank field is left out of a new key, and removed
/// (null) from an existing one. A value that is not a number is sent as text and refused by name like any other.
/// Public only because it is a parameter of a Razor component, which are public.
/// </summary>
public sealed class KeyForm
{
    public string? UserId { get; set; }
    public string? KeyAlias { get; set; }
    public string[] Models { get; set; } = [];
    public string? RpmLimit { get; set; }
    public string? TpmLimit { get; set; }
    public string? MaxParallelRequests { get; set; }
    public string? MaxBudget { get; set; }
    public string? BudgetDuration { get; set; }
    public string? SoftBudget { get; set; }
    /// <summary>For a new key: how long it lives (<c>30d</c>); blank: for ever.</summary>
    public string? Duration { get; set; }

    /// <summary>The form as a key's current values, to edit them.</summary>
    internal static KeyForm Of(ApiKeyRecord record) => new()
    {
        KeyAlias = record.KeyAlias,
        Models = [.. record.Models],
        RpmLimit = Text(record.RpmLimit),
        TpmLimit = Text(record.TpmLimit),
        MaxParallelRequests = Text(record.MaxParallelRequests),
        MaxBudget = Text(record.MaxBudget),
        BudgetDuration = record.BudgetDuration,
        SoftBudget = Text(record.SoftBudget),
    };

    internal JsonElement ToGenerateBody()
    {
        var body = new JsonObject();
        Put(body, "user_id", String(UserId), omitBlank: true);
        Put(body, "duration", String(Duration), omitBlank: true);
        Common(body, omitBlank: true);
        return ToElement(body);
    }

    internal JsonElement ToUpdateBody(string token)
    {
        var body = new JsonObject { ["key"] = token };
        Common(body, omitBlank: false);
        return ToElement(body);
    }

    private void Common(JsonObject body, bool omitBlank)
    {
        Put(body, "key_alias", String(KeyAlias), omitBlank);
        var models = Models.Where(m => !string.IsNullOrWhiteSpace(m)).Distinct(StringComparer.Ordinal).ToArray();
        if (models.Length > 0 || !omitBlank)
        {
            body["models"] = new JsonArray([.. models.Select(m => (JsonNode?)JsonValue.Create(m))]);
        }
        Put(body, "rpm_limit", Number(RpmLimit), omitBlank);
        Put(body, "tpm_limit", Number(TpmLimit), omitBlank);
        Put(body, "max_parallel_requests", Number(MaxParallelRequests), omitBlank);
        Put(body, "max_budget", Number(MaxBudget), omitBlank);
        Put(body, "budget_duration", String(BudgetDuration), omitBlank);
        Put(body, "soft_budget", Number(SoftBudget), omitBlank);
    }

    private static void Put(JsonObject body, string name, JsonNode? value, bool omitBlank)
    {
        if (value is not null || !omitBlank)
        {
            body[name] = value;
        }
    }

    private static JsonNode? String(string? text) => string.IsNullOrWhiteSpace(text) ? null : JsonValue.Create(text.Trim());

    /// <summary>A number as JSON when it is one; otherwise the text itself, which the field's check then refuses by name.</summary>
    private static JsonNode? Number(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }
        var trimmed = text.Trim();
        return decimal.TryParse(trimmed, NumberStyles.Number, CultureInfo.InvariantCulture, out var number)
            ? JsonValue.Create(number)
            : JsonValue.Create(trimmed);
    }

    private static string? Text(int? value) => value?.ToString(CultureInfo.InvariantCulture);

    private static string? Text(decimal? value) => value?.ToString(CultureInfo.InvariantCulture);

    private static JsonElement ToElement(JsonObject body) => JsonSerializer.SerializeToElement(body, UiFormJsonContext.Default.JsonObject);
}

[System.Text.Json.Serialization.JsonSerializable(typeof(JsonObject))]
internal sealed partial class UiFormJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
