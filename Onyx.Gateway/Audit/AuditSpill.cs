namespace Onyx.Gateway.Audit;

/// <summary>
/// A replica's spill: the records of its <see cref="AuditTrail"/> that did not reach Redis, in one file of
/// <see cref="AuditOptions.SpillDirectory"/> named for the trail and the replica, plus the files earlier replicas of
/// the same trail left there (adopted at start, to be replayed). The file is created only when the first record is
/// spilled, so a gateway whose Redis answers writes nothing to disk; it is bounded by
/// <see cref="AuditOptions.SpillMaxBytes"/>, past which newer records are dropped until it has been replayed.
/// </summary>
internal sealed partial class AuditSpill : IDisposable
{
    private const string Prefix = "spill-";

    private readonly Lock _gate = new();
    private readonly AuditTrail _trail;
    private readonly long _maxBytes;
    private readonly AuditMetrics _metrics;
    private readonly ILogger _logger;
    private readonly List<AuditSpillFile> _orphans = [];
    private readonly List<string> _others = [];
    private AuditSpillFile? _own;
    private long _dropped;
    private int _unwritableReported;

    /// <summary>Creates the directory (so a path that cannot be written stops the start) and adopts the trail's leftovers.</summary>
    public AuditSpill(string directory, AuditTrail trail, string replica, long maxBytes, AuditMetrics metrics, ILogger logger)
    {
        _trail = trail;
        _maxBytes = maxBytes;
        _metrics = metrics;
        _logger = logger;
        Directory = directory;
        Path = System.IO.Path.Combine(directory, $"{Prefix}{trail.Key}-{replica}{AuditSpillFile.Extension}");
        System.IO.Directory.CreateDirectory(directory);
        foreach (var file in System.IO.Directory.EnumerateFiles(directory, "*" + AuditSpillFile.Extension).Order(StringComparer.Ordinal))
        {
            if (!System.IO.Path.GetFileName(file).StartsWith($"{Prefix}{trail.Key}-", StringComparison.Ordinal))
            {
                // Another trail's spill file, a standalone gateway's audit file, or a file of an older layout: not
                // this trail's to replay. Not even opened, so a live gateway of another trail is never disturbed.
                _others.Add(System.IO.Path.GetFileName(file));
            }
            else if (AuditSpillFile.TryOpen(file) is not { } orphan)
            {
                // Held by a live replica of this trail: it replays its own file.
            }
            else if (orphan.Trail != trail.Name)
            {
                _others.Add(System.IO.Path.GetFileName(file));
                orphan.Dispose();
            }
            else if (orphan.HasPending)
            {
                orphan.EndTornLine();
                _orphans.Add(orphan);
            }
            else
            {
                orphan.Delete();
            }
        }
    }

    public AuditTrail Trail => _trail;

    public string Directory { get; }

    /// <summary>This replica's spill file (which exists only once something was spilled).</summary>
    public string Path { get; }

    /// <summary>Files of earlier replicas of this trail with records to replay, in name order.</summary>
    public IReadOnlyList<AuditSpillFile> Orphans => _orphans;

    /// <summary>Files in the directory that are not this trail's: left alone.</summary>
    public IReadOnlyList<string> Others => _others;

    /// <summary>This replica's file, once created.</summary>
    public AuditSpillFile? Own => Volatile.Read(ref _own);

    /// <summary>Records of this replica's file wait to be replayed.</summary>
    public bool HasPending => Own is { HasPending: true };

    public long PendingBytes => Own?.PendingBytes ?? 0;

    /// <summary>
    /// Appends the records (within the bound), fsync'd; the rest are dropped, counted, and logged once per episode.
    /// Never throws for a disk that refuses: the records are counted as lost (logged once until a write succeeds again)
    /// and the writer goes on.
    /// </summary>
    public void Append(IReadOnlyList<AuditRecord> records)
    {
        int appended;
        try
        {
            var own = Own ?? Open();
            // At the bound, no need to serialize what cannot be written.
            appended = own.Length >= _maxBytes ? 0 : own.Append(records, _maxBytes);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _metrics.Dropped(records.Count, AuditMetrics.SpillUnwritable);
            if (Interlocked.Exchange(ref _unwritableReported, 1) == 0)
            {
                Log.Unwritable(_logger, records.Count, Path, ex.Message);
            }
            return;
        }
        Volatile.Write(ref _unwritableReported, 0);
        if (appended > 0)
        {
            _metrics.Written(appended, AuditMetrics.SpillFile);
        }
        var dropped = records.Count - appended;
        if (dropped > 0)
        {
            _metrics.Dropped(dropped, AuditMetrics.SpillFull);
            if (Interlocked.Add(ref _dropped, dropped) == dropped)
            {
                Log.Full(_logger, _maxBytes, Path, records[appended].Timestamp);
            }
        }
    }

    /// <summary>
    /// Empties this replica's file if all of it is confirmed written (false if more came meanwhile), which ends an
    /// episode of dropped records.
    /// </summary>
    public bool TryTruncate()
    {
        if (Own is not { } own || !own.TryTruncate())
        {
            return false;
        }
        if (Interlocked.Exchange(ref _dropped, 0) is > 0 and var dropped)
        {
            Log.FullEnded(_logger, dropped, Path);
        }
        return true;
    }

    /// <summary>An orphan is replayed: it is deleted.</summary>
    public void Replayed(AuditSpillFile orphan)
    {
        orphan.Delete();
        _orphans.Remove(orphan);
    }

    /// <summary>Closes the files; this replica's own is deleted when nothing in it waits for Redis.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_own is { } own)
            {
                if (own.HasPending)
                {
                    own.Dispose();
                }
                else
                {
                    own.Delete();
                }
            }
        }
        foreach (var orphan in _orphans)
        {
            orphan.Dispose();
        }
    }

    private AuditSpillFile Open()
    {
        lock (_gate)
        {
            if (_own is null)
            {
                // The directory was made at start, but may have been removed since (a cleanup of a data folder).
                System.IO.Directory.CreateDirectory(Directory);
                Volatile.Write(ref _own, AuditSpillFile.Create(Path, _trail.Name));
            }
            return _own!;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(8011, LogLevel.Error, "Audit: the spill file {SpillPath} reached its bound of {MaxBytes} bytes; newer records are dropped, from the one of {FirstDropped}, until Redis answers and the file is replayed")]
        public static partial void Full(ILogger logger, long maxBytes, string spillPath, DateTimeOffset firstDropped);

        [LoggerMessage(8012, LogLevel.Warning, "Audit: the spill file {SpillPath} is replayed; {Dropped} records were dropped at its bound meanwhile")]
        public static partial void FullEnded(ILogger logger, long dropped, string spillPath);

        [LoggerMessage(8016, LogLevel.Error, "Audit: cannot write the spill file {SpillPath} ({Error}); {Count} records lost, and every record Redis does not take is lost until the file can be written")]
        public static partial void Unwritable(ILogger logger, int count, string spillPath, string error);
    }
}
