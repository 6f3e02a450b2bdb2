namespace Onyx.Gateway.Tests.TestHost;

/// <summary>Reading the audit files a stopped gateway left: its spill files and its standalone audit file.</summary>
public static class AuditFiles
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    /// <summary>The file's lines once no process holds its lock (see <see cref="WaitUntilReleasedAsync"/>).</summary>
    public static async Task<string[]> ReadLinesAsync(string path)
    {
        await WaitUntilReleasedAsync(path);
        return await File.ReadAllLinesAsync(path);
    }

    /// <summary>The lines that are records (a spill file's first line names its trail).</summary>
    public static async Task<List<string>> ReadRecordsAsync(string path) =>
        [.. (await ReadLinesAsync(path)).Where(line => line.StartsWith("{\"audit_id\":", StringComparison.Ordinal))];

    /// <summary>
    /// Waits (with a deadline) until no process holds the file's lock. The gateway closes it when it stops, but a
    /// process another test starts in that instant (fork, then exec) can share the open file, and so its lock, until it
    /// execs. Seen once in a full run: a read failed with "being used by another process". Nothing announces the
    /// release, so this asks again.
    /// </summary>
    public static Task WaitUntilReleasedAsync(string path) => Eventually.WaitUntilAsync(() =>
    {
        try
        {
            using var exclusive = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
    }, Deadline, $"no process to hold {path}");
}
