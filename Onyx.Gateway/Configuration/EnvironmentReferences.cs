using System.Text.RegularExpressions;

namespace Onyx.Gateway.Configuration;

/// <summary>Resolves the two reference forms LiteLLM configs use: <c>${VAR}</c> and <c>os.environ/VAR</c>.</summary>
internal static partial class EnvironmentReferences
{
    private const string OsEnvironPrefix = "os.environ/";

    /// <summary>
    /// Looks variables up in configuration, which includes the process environment, so Aspire parameters,
    /// user secrets and plain environment variables all work. An unset variable resolves to null.
    /// </summary>
    public static string? Resolve(string? value, IConfiguration configuration)
    {
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }
        if (value.StartsWith(OsEnvironPrefix, StringComparison.Ordinal))
        {
            return NullIfEmpty(configuration[value[OsEnvironPrefix.Length..].Trim()]);
        }
        var resolved = Placeholder().Replace(value, match => configuration[match.Groups[1].Value] ?? string.Empty);
        return NullIfEmpty(resolved);
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

    [GeneratedRegex(@"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")]
    private static partial Regex Placeholder();
}
