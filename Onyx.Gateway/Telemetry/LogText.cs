using System.Text;

namespace Onyx.Gateway.Telemetry;

/// <summary>
/// Text a client chose (OpenAI's <c>user</c>, say), made safe to put in a log line or an error message: control
/// characters escaped, so no value can end a line and forge the next one in a plain-text log, and the length bounded.
/// </summary>
internal static class LogText
{
    public const int MaxLength = 256;

    public static string Safe(string value)
    {
        var clean = true;
        foreach (var c in value)
        {
            if (char.IsControl(c))
            {
                clean = false;
                break;
            }
        }
        if (clean && value.Length <= MaxLength)
        {
            return value;
        }
        var text = new StringBuilder(Math.Min(value.Length, MaxLength) + 16);
        foreach (var c in value)
        {
            if (text.Length >= MaxLength)
            {
                text.Append('…');
                break;
            }
            _ = c switch
            {
                '\n' => text.Append("\\n"),
                '\r' => text.Append("\\r"),
                '\t' => text.Append("\\t"),
                _ when char.IsControl(c) => text.Append(System.Globalization.CultureInfo.InvariantCulture, $"\\u{(int)c:x4}"),
                _ => text.Append(c),
            };
        }
        return text.ToString();
    }
}
