using System.Text.Json;
using System.Text.Json.Nodes;

namespace Onyx.Gateway.Tests.Fakes;

/// <summary>One request a fake provider received, as it arrived on the wire.</summary>
public sealed record RecordedRequest(string Method, string Path, string QueryString, IReadOnlyDictionary<string, string> Headers, string Body)
{
    /// <summary>The body parsed as JSON; <see langword="null"/> when it is empty or not JSON.</summary>
    public JsonNode? Json { get; } = TryParse(Body);

    /// <summary>The <c>Authorization</c> header as received (e.g. <c>Bearer sk-…</c>), or <see langword="null"/>.</summary>
    public string? Authorization => Header("Authorization");

    /// <summary>The <c>model</c> field of the JSON body, or <see langword="null"/>.</summary>
    public string? Model => Json?["model"] is JsonValue value && value.TryGetValue<string>(out var model) ? model : null;

    /// <summary>A header value (several values joined with <c>", "</c>), or <see langword="null"/>; the name is case-insensitive.</summary>
    public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value : null;

    private static JsonNode? TryParse(string body)
    {
        if (string.IsNullOrWhiteSpace(body))
        {
            return null;
        }

        try
        {
            return JsonNode.Parse(body);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
