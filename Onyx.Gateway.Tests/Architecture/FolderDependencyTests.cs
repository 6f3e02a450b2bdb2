using NetArchTest.Rules;
using Xunit.Abstractions;

namespace Onyx.Gateway.Tests.Architecture;

/// <summary>
/// The gateway's folders depend one way, down: each only on folders below it in <see cref="Layers"/>, so no two
/// folders depend on each other, directly or in a loop. Dependencies are read from the compiled assembly (every type
/// a type's signatures and method bodies name), not from source text.
/// </summary>
public sealed class FolderDependencyTests(ITestOutputHelper output)
{
    /// <summary>Bottom to top, as docs/architecture.md draws them.</summary>
    public static readonly string[] Layers =
    [
        "OpenAi", "Configuration", "Batching", "Model", "Cluster", "Telemetry", "Audit", "Auth", "Providers", "Resilience",
        "Routing", "RateLimiting", "Health", "Security", "Api", "Ui",
    ];

    [Fact]
    public void EveryFolderHasItsPlaceInTheLayers()
    {
        var folders = typeof(GatewayAssembly).Assembly.GetTypes()
            .Select(t => t.Namespace ?? "")
            .Where(ns => ns.StartsWith("Onyx.Gateway.", StringComparison.Ordinal))
            .Select(ns => ns.Split('.')[2])
            .Distinct()
            .Order(StringComparer.Ordinal);

        Assert.All(folders, folder => Assert.Contains(folder, Layers));
    }

    [Fact]
    public void EachFolderDependsOnlyOnFoldersBelowIt()
    {
        var assembly = typeof(GatewayAssembly).Assembly;
        var upward = new List<string>();
        for (var i = 0; i < Layers.Length; i++)
        {
            var below = new List<string>();
            for (var j = 0; j < Layers.Length; j++)
            {
                if (j == i)
                {
                    continue;
                }
                var result = Types.InAssembly(assembly)
                    .That().ResideInNamespaceMatching($@"^Onyx\.Gateway\.{Layers[i]}(\..+)?$")
                    .Should().NotHaveDependencyOnAny($"Onyx.Gateway.{Layers[j]}")
                    .GetResult();
                if (result.IsSuccessful)
                {
                    continue;
                }
                if (j < i)
                {
                    below.Add(Layers[j]);
                }
                else
                {
                    upward.Add($"{Layers[i]} -> {Layers[j]}: {string.Join(", ", result.FailingTypes.Select(t => t.Name).Distinct().Take(8))}");
                }
            }
            output.WriteLine($"{Layers[i]} -> {(below.Count == 0 ? "(nothing)" : string.Join(", ", below))}");
        }

        Assert.True(upward.Count == 0, "Folders that depend on folders above them:\n" + string.Join("\n", upward));
    }
}
