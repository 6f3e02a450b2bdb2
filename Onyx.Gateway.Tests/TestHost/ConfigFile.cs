namespace Onyx.Gateway.Tests.TestHost;

/// <summary>A config file written for one test, deleted after it.</summary>
public sealed class ConfigFile : IAsyncDisposable
{
    private ConfigFile(string path) => Path = path;

    public string Path { get; }

    public static async Task<ConfigFile> WriteAsync(string yaml)
    {
        var path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"onyx-config-{Guid.NewGuid():N}.yaml");
        await File.WriteAllTextAsync(path, yaml);
        return new ConfigFile(path);
    }

    public ValueTask DisposeAsync()
    {
        File.Delete(Path);
        return ValueTask.CompletedTask;
    }
}
