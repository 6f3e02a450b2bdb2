namespace Onyx.AppHost.Infrastructure;

/// <summary>Finds a program on PATH, as a shell would.</summary>
internal static class ExecutableLocator
{
    /// <summary>The full path of the first executable <paramref name="name"/> on PATH, or <see langword="null"/>.</summary>
    public static string? FindOnPath(string name)
    {
        var directories = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        string[] fileNames = OperatingSystem.IsWindows() ? [name + ".exe", name] : [name];

        return directories
            .SelectMany(directory => fileNames.Select(fileName => Path.Combine(directory, fileName)))
            .FirstOrDefault(IsExecutable);
    }

    private static bool IsExecutable(string path)
    {
        if (!File.Exists(path))
        {
            return false;
        }

        const UnixFileMode anyExecute = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
        return OperatingSystem.IsWindows() || (File.GetUnixFileMode(path) & anyExecute) != 0;
    }
}
