using System.Buffers;
using System.Text.Json;

namespace Onyx.Gateway.Audit;

/// <summary>
/// An append-only JSON-lines file of audit records, held open (and locked) by one process: a replica's spill file
/// (records that did not reach Redis), or a segment of the standalone audit file. Hand-written: no library offers a
/// locked, fsync'd, size-bounded append log with a replay cursor, and the file stays readable with <c>jq</c>.
/// A spill file's first line names the trail its records belong to (<c>{"onyx_audit_trail":"…"}</c>), so that only
/// a gateway of that trail ever replays it; a file without that line belongs to no trail and is never replayed.
/// Appends are fsync'd per batch; <see cref="ReadNext"/> walks it from the last confirmed offset; it is emptied (back
/// to its header) only once everything in it is confirmed written.
/// </summary>
internal sealed class AuditSpillFile : IDisposable
{
    public const string Extension = ".jsonl";

    private const string TrailProperty = "onyx_audit_trail";
    private const int InitialBufferBytes = 16 * 1024;
    private const int MaxKeptBufferBytes = 1024 * 1024;

    /// <summary>More than any header this gateway writes: a longer first line is a record, not a header.</summary>
    private const int MaxHeaderBytes = 64 * 1024;

    private readonly Lock _gate = new();
    private readonly FileStream _file;
    private readonly Utf8JsonWriter _json = new(Stream.Null);
    private readonly long _start;
    private ArrayBufferWriter<byte> _lines = new(InitialBufferBytes);
    private long _confirmed;

    private AuditSpillFile(string path, FileStream file, string? trail, long start)
    {
        Path = path;
        _file = file;
        Trail = trail;
        _start = start;
        _confirmed = start;
    }

    public string Path { get; }

    /// <summary>The trail named in the file's first line; null for a file that names none.</summary>
    public string? Trail { get; }

    /// <summary>The file's size on disk.</summary>
    public long Length
    {
        get
        {
            lock (_gate)
            {
                return _file.Length;
            }
        }
    }

    /// <summary>Bytes of records appended and not yet confirmed written to Redis.</summary>
    public long PendingBytes
    {
        get
        {
            lock (_gate)
            {
                return _file.Length - _confirmed;
            }
        }
    }

    public bool HasPending => PendingBytes > 0;

    /// <summary>
    /// Creates a new file and locks it; with <paramref name="trail"/>, its first line names that trail.
    /// </summary>
    /// <exception cref="IOException">The file exists already, or cannot be written.</exception>
    public static AuditSpillFile Create(string path, string? trail)
    {
        var file = Open(path, FileMode.CreateNew);
        long start = 0;
        if (trail is not null)
        {
            using var header = new MemoryStream();
            using (var writer = new Utf8JsonWriter(header))
            {
                writer.WriteStartObject();
                writer.WriteString(TrailProperty, trail);
                writer.WriteEndObject();
            }
            header.WriteByte((byte)'\n');
            file.Write(header.GetBuffer().AsSpan(0, (int)header.Length));
            file.Flush(flushToDisk: true);
            start = header.Length;
        }
        return new AuditSpillFile(path, file, trail, start);
    }

    /// <summary>
    /// Opens and locks an existing file to replay it, reading the trail it names; null if another live process holds
    /// it (or it is gone). Nothing is written to it here: a file of another trail is only looked at.
    /// </summary>
    public static AuditSpillFile? TryOpen(string path)
    {
        FileStream file;
        try
        {
            file = Open(path, FileMode.Open);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        var (trail, start) = ReadHeader(file);
        return new AuditSpillFile(path, file, trail, start);
    }

    /// <summary>
    /// A crash mid-append can leave a last line without its newline: ends it, so the next record starts a line of its
    /// own (the broken line is skipped on replay). Only for a file this gateway is about to replay and append to.
    /// </summary>
    public void EndTornLine()
    {
        lock (_gate)
        {
            if (_file.Length > _start)
            {
                _file.Seek(-1, SeekOrigin.End);
                if (_file.ReadByte() != '\n')
                {
                    _file.Seek(0, SeekOrigin.End);
                    _file.WriteByte((byte)'\n');
                    _file.Flush(flushToDisk: true);
                }
            }
        }
    }

    /// <summary>Appends the records, one JSON line each, and syncs the file to disk.</summary>
    public void Append(IReadOnlyList<AuditRecord> records) => Append(records, long.MaxValue);

    /// <summary>
    /// Appends the records in order, one JSON line each, as long as the file stays within <paramref name="maxBytes"/>,
    /// and syncs it to disk. Returns how many were appended: the rest (the newest) did not fit. A file holding no
    /// record yet takes the first one whatever its size, so a bound smaller than one record still makes progress.
    /// </summary>
    public int Append(IReadOnlyList<AuditRecord> records, long maxBytes)
    {
        lock (_gate)
        {
            // One buffer and writer for the file's life (under the lock: a request may append while the writer
            // does): a batch a few milliseconds apart would otherwise grow a fresh buffer from nothing each time.
            _lines.ResetWrittenCount();
            _json.Reset(_lines);
            var length = _file.Length;
            var appended = 0;
            var fit = 0;
            foreach (var record in records)
            {
                JsonSerializer.Serialize(_json, record, AuditJsonContext.Default.AuditRecord);
                _json.Flush();
                _json.Reset();
                _lines.Write("\n"u8);
                if (length + _lines.WrittenCount > maxBytes && (length > _start || appended > 0))
                {
                    break;
                }
                appended++;
                fit = _lines.WrittenCount;
            }
            if (fit > 0)
            {
                _file.Seek(0, SeekOrigin.End);
                _file.Write(_lines.WrittenSpan[..fit]);
                _file.Flush(flushToDisk: true);
            }
            if (_lines.Capacity > MaxKeptBufferBytes)
            {
                // A burst (a long Redis outage's backlog) does not pin its buffer for good.
                _lines = new ArrayBufferWriter<byte>(InitialBufferBytes);
            }
            return appended;
        }
    }

    /// <summary>
    /// Up to <paramref name="max"/> complete records after the confirmed offset, and the offset just past them.
    /// Lines that are not a record (a torn write) are counted in <paramref name="unreadable"/> and passed over.
    /// </summary>
    public (List<AuditRecord> Records, long End) ReadNext(int max, out int unreadable)
    {
        var records = new List<AuditRecord>();
        unreadable = 0;
        lock (_gate)
        {
            var end = _confirmed;
            _file.Seek(_confirmed, SeekOrigin.Begin);
            var line = new MemoryStream();
            var reader = new BufferedStream(_file, 64 * 1024);
            var position = _confirmed;
            int b;
            while (records.Count < max && (b = reader.ReadByte()) >= 0)
            {
                position++;
                if (b != '\n')
                {
                    line.WriteByte((byte)b);
                    continue;
                }
                end = position;
                if (Parse(line) is { } record)
                {
                    records.Add(record);
                }
                else if (line.Length > 0)
                {
                    unreadable++;
                }
                line.SetLength(0);
            }
            return (records, end);
        }
    }

    /// <summary>Everything up to <paramref name="end"/> is in Redis.</summary>
    public void Confirm(long end)
    {
        lock (_gate)
        {
            _confirmed = Math.Max(_confirmed, end);
        }
    }

    /// <summary>
    /// Empties the file (back to its header) if every record in it is confirmed; false if more were appended meanwhile.
    /// </summary>
    public bool TryTruncate()
    {
        lock (_gate)
        {
            if (_file.Length != _confirmed)
            {
                return false;
            }
            _file.SetLength(_start);
            _file.Flush(flushToDisk: true);
            _confirmed = _start;
            return true;
        }
    }

    /// <summary>Deletes the file (held open, so no other process can have taken it meanwhile) and closes it.</summary>
    public void Delete()
    {
        lock (_gate)
        {
            try
            {
                File.Delete(Path);
            }
            catch (IOException)
            {
                // Its directory is gone already: so is the file.
            }
            _file.Dispose();
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _file.Dispose();
            _json.Dispose();
        }
    }

    // FileShare.None is an advisory lock (flock) on Unix, and a real one on Windows: a second process, or a second
    // gateway in this one, cannot open the file while it is held.
    private static FileStream Open(string path, FileMode mode) =>
        new(path, mode, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);

    /// <summary>The trail the first line names, and where the records start; (null, 0) for a file with no header.</summary>
    private static (string? Trail, long Start) ReadHeader(FileStream file)
    {
        var buffer = new byte[(int)Math.Min(file.Length, MaxHeaderBytes)];
        file.Seek(0, SeekOrigin.Begin);
        file.ReadExactly(buffer);
        var newline = Array.IndexOf(buffer, (byte)'\n');
        if (newline < 0)
        {
            return (null, 0);
        }
        try
        {
            using var header = JsonDocument.Parse(buffer.AsMemory(0, newline));
            return header.RootElement.ValueKind == JsonValueKind.Object
                && header.RootElement.TryGetProperty(TrailProperty, out var trail) && trail.ValueKind == JsonValueKind.String
                ? (trail.GetString(), newline + 1)
                : (null, 0);
        }
        catch (JsonException)
        {
            return (null, 0);
        }
    }

    private static AuditRecord? Parse(MemoryStream line)
    {
        if (line.Length == 0)
        {
            return null;
        }
        try
        {
            return JsonSerializer.Deserialize(line.GetBuffer().AsSpan(0, (int)line.Length), AuditJsonContext.Default.AuditRecord);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
