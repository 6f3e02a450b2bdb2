namespace Onyx.Gateway.Audit;

/// <summary>
/// The audit trail of a standalone gateway (no Redis): <c>audit.jsonl</c> in <see cref="AuditFileOptions.Directory"/>,
/// one JSON record per line, fsync'd per batch, held locked by this process. At <see cref="AuditFileOptions.MaxBytes"/>
/// it is rotated, as log files are: <c>audit.jsonl</c> becomes <c>audit.1.jsonl</c>, <c>audit.1.jsonl</c> becomes
/// <c>audit.2.jsonl</c>…, and the oldest beyond <see cref="AuditFileOptions.MaxFiles"/> is deleted. Its files name no
/// trail, so no gateway with Redis ever replays them. Hand-written: Microsoft.Extensions.Logging has no file sink, and
/// rolling log sinks (Serilog's) write log events, not fsync'd records in their own JSON.
/// </summary>
internal sealed partial class AuditFile : IDisposable
{
    public const string BaseName = "audit";

    private readonly Lock _gate = new();
    private readonly AuditFileOptions _options;
    private readonly AuditMetrics _metrics;
    private readonly ILogger _logger;
    private AuditSpillFile _current;
    private bool _closed;
    private bool _disposed;
    private int _unwritableReported;

    /// <summary>Opens (or continues) <c>audit.jsonl</c>.</summary>
    /// <exception cref="IOException">Another live process holds it, or it cannot be written.</exception>
    public AuditFile(AuditFileOptions options, AuditMetrics metrics, ILogger logger)
    {
        _options = options;
        _metrics = metrics;
        _logger = logger;
        Directory.CreateDirectory(options.Directory!);
        Path = NameOf(0);
        _current = OpenCurrent();
    }

    /// <summary>The file records are appended to.</summary>
    public string Path { get; }

    /// <summary>Appends the records, rotating as often as they need; never throws for a disk that refuses (counted, logged).</summary>
    public void Append(IReadOnlyList<AuditRecord> records)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var written = 0;
            try
            {
                if (_closed)
                {
                    // A rotation that could not open the next file: try again.
                    _current = OpenCurrent();
                    _closed = false;
                }
                while (written < records.Count)
                {
                    var rest = written == 0 ? records : records.Skip(written).ToList();
                    written += _current.Append(rest, _options.MaxBytes);
                    if (written < records.Count)
                    {
                        Rotate();
                    }
                }
                _unwritableReported = 0;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                _metrics.Dropped(records.Count - written, AuditMetrics.FileUnwritable);
                if (_unwritableReported++ == 0)
                {
                    Log.Unwritable(_logger, records.Count - written, Path, ex.Message);
                }
            }
            finally
            {
                if (written > 0)
                {
                    _metrics.Written(written, AuditMetrics.File);
                }
            }
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _current.Dispose();
            _disposed = true;
        }
    }

    private void Rotate()
    {
        _current.Dispose();
        _closed = true;
        if (_options.MaxFiles == 1)
        {
            File.Delete(Path);
        }
        for (var i = _options.MaxFiles - 1; i >= 1; i--)
        {
            if (File.Exists(NameOf(i - 1)))
            {
                File.Move(NameOf(i - 1), NameOf(i), overwrite: true);
            }
        }
        _current = OpenCurrent();
        _closed = false;
        Log.Rotated(_logger, Path, _options.MaxBytes, _options.MaxFiles);
    }

    private AuditSpillFile OpenCurrent()
    {
        if (!File.Exists(Path))
        {
            return AuditSpillFile.Create(Path, trail: null);
        }
        var file = AuditSpillFile.TryOpen(Path) ?? throw new IOException($"'{Path}' is held by another process (one standalone gateway per directory).");
        file.EndTornLine();
        return file;
    }

    private string NameOf(int generation) => System.IO.Path.Combine(_options.Directory!,
        generation == 0 ? BaseName + AuditSpillFile.Extension : $"{BaseName}.{generation}{AuditSpillFile.Extension}");

    private static partial class Log
    {
        [LoggerMessage(8014, LogLevel.Information, "Audit: {AuditPath} reached {MaxBytes} bytes and was rotated; {MaxFiles} files are kept, the oldest beyond them deleted")]
        public static partial void Rotated(ILogger logger, string auditPath, long maxBytes, int maxFiles);

        [LoggerMessage(8018, LogLevel.Error, "Audit: cannot write the audit file {AuditPath} ({Error}); {Count} records lost, and more until it can be written")]
        public static partial void Unwritable(ILogger logger, int count, string auditPath, string error);
    }
}
