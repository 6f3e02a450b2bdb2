using System.Globalization;
using System.Text.RegularExpressions;

namespace Onyx.Gateway.Tests.TestHost;

/// <summary>A minimal reader of the Prometheus text format: sample lines as name, labels and value.</summary>
internal sealed partial class Prometheus
{
    private readonly List<(string Name, Dictionary<string, string> Labels, double Value)> _samples = [];

    public List<string> Lines { get; } = [];

    public static Prometheus Parse(string text)
    {
        var scrape = new Prometheus();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            scrape.Lines.Add(line);
            if (line.StartsWith('#'))
            {
                continue;
            }
            var match = Sample().Match(line);
            Assert.True(match.Success, "Not a Prometheus sample line: " + line);
            var labels = Label().Matches(match.Groups["labels"].Value).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
            scrape._samples.Add((match.Groups["name"].Value, labels, double.Parse(match.Groups["value"].Value, CultureInfo.InvariantCulture)));
        }
        return scrape;
    }

    /// <summary>The sum of every sample of <paramref name="name"/> carrying all the given labels (0 when none does).</summary>
    public double Sum(string name, params (string Label, string Value)[] labels) => _samples
        .Where(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Label, out var v) && v == l.Value))
        .Sum(s => s.Value);

    /// <summary>How many samples (series) of <paramref name="name"/> carry all the given labels.</summary>
    public int Count(string name, params (string Label, string Value)[] labels) => _samples
        .Count(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Label, out var v) && v == l.Value));

    /// <summary>Every label name of the samples whose name starts with one of <paramref name="prefixes"/>.</summary>
    public HashSet<string> LabelNames(params string[] prefixes) => _samples
        .Where(s => prefixes.Any(p => s.Name.StartsWith(p, StringComparison.Ordinal)))
        .SelectMany(s => s.Labels.Keys)
        .ToHashSet();

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>.*)\})? (?<value>\S+)( \d+)?$")]
    private static partial Regex Sample();

    [GeneratedRegex(@"(\w+)=""((?:[^""\\]|\\.)*)""")]
    private static partial Regex Label();
}
