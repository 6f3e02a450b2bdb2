using System.Data.Common;

namespace Onyx.Sample.Chat;

/// <summary>
/// The gateway's connection string as an Aspire AppHost hands it over: <c>Endpoint=http://host:port/v1;Key=…</c>, and
/// optionally <c>;Model=alias</c> — the shape Aspire's OpenAI client integration (<c>AddOpenAIClient</c>) reads.
/// </summary>
internal sealed record OnyxConnection(Uri Endpoint, string Key, string? Model)
{
    /// <summary>The connection name the AppHost's default consumer of the gateway has.</summary>
    public const string DefaultName = "onyx";

    /// <summary>Parses <c>ConnectionStrings:{name}</c>; a bad value stops the start with a message naming it (and never echoing the key).</summary>
    public static OnyxConnection Parse(string name, string? connectionString)
    {
        var at = $"ConnectionStrings:{name}";
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new InvalidOperationException(
                $"{at} is not set: reference the gateway's consumer from the AppHost (.WithReference(onyx)), or set it to Endpoint=<gateway>/v1;Key=<key>.");
        }

        var parts = new DbConnectionStringBuilder();
        try
        {
            parts.ConnectionString = connectionString;
        }
        catch (ArgumentException)
        {
            // The exception's message quotes the string, key and all: it is not passed on.
            throw new InvalidOperationException($"{at} is not a connection string of the form Endpoint=<gateway>/v1;Key=<key>.");
        }

        string? Part(string key) => parts.TryGetValue(key, out var value) && value is string text && !string.IsNullOrWhiteSpace(text) ? text : null;

        if (Part("Endpoint") is not { } endpoint || !Uri.TryCreate(endpoint, UriKind.Absolute, out var uri)
            || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new InvalidOperationException($"{at} needs Endpoint=<the gateway's http(s) URL>/v1.");
        }
        var key = Part("Key") ?? throw new InvalidOperationException($"{at} needs Key=<an API key of the gateway>.");
        return new OnyxConnection(uri, key, Part("Model"));
    }
}
