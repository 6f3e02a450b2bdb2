using System.Buffers;
using System.Text.Json;

namespace Onyx.Gateway.Audit;

/// <summary>
/// An append-only JSON-lines file of audit records that did not reach Redis, held open (and locked) by one replica.
/// Hand-written: no library offers a locked, fsync'd append log with a replay cursor, and the file stays readable
/// with <c>jq</c>. Appends are fsync'd per batch; <see cref="ReadNext"/> walks it from the last confirmed offset;
/// it is truncated only once everything in it is confirmed written.
/// </summary>
internal sealed class AuditSpillFile : IDisposable
{
    private const int InitialBufferBytes = 16 * 1024;
    private const int MaxKeptBufferBytes = 1024 * 1024;

    private readonly Lock _gate = new();
    private readonly FileStream _file;
    private readonly Utf8JsonWriter _json = new(Stream.Null);
    private ArrayBufferWriter<byte> _lines = new(InitialBufferBytes);
    private long _confirmed;

    private AuditSpillFile(string path, FileStream file)
    {
        Path = path;
        _file = file;
    }

    public string Path { get; }

    /// <summary>Bytes appended and not yet confirmed written to Redis.</summary>
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

    /// <summary>Opens (creating it if needed) and locks the file; null if another live process holds it.</summary>
    public static AuditSpillFile? TryOpen(string path)
    {
        FileStream file;
        try
        {
            // FileShare.None is an advisory lock (flock) on Unix, and a real one on Windows: a second process, or a
            // second gateway in this one, cannot open the file while it is held.
            file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);
        }
        catch (IOException)
        {
            return null;
        }
        // A crash mid-append can leave a last line without its newline: end it, so the next record starts a line of
        // its own (the broken line is skipped on replay).
        if (file.Length > 0)
        {
            file.Seek(-1, SeekOrigin.End);
            if (file.ReadByte() != '\n')
            {
                file.WriteByte((byte)'\n');
                file.Flush(flushToDisk: true);
            }
        }
        return new AuditSpillFile(path, file);
    }

    /// <summary>Appends the records, one JSON line each, and syncs the file to disk.</summary>
    public void Append(IReadOnlyList<AuditRecord> records)
    {
        lock (_gate)
        {
            // One buffer and writer for the file's life (under the lock: a request may append while the writer
            // does): a batch a few milliseconds apart would otherwise grow a fresh buffer from nothing each time.
            _lines.ResetWrittenCount();
            _json.Reset(_lines);
            foreach (var record in records)
            {
                JsonSerializer.Serialize(_json, record, AuditJsonContext.Default.AuditRecord);
                _json.Flush();
                _json.Reset();
                _lines.Write("\n"u8);
            }
            _file.Seek(0, SeekOrigin.End);
            _file.Write(_lines.WrittenSpan);
            _file.Flush(flushToDisk: true);
            if (_lines.Capacity > MaxKeptBufferBytes)
            {
                // A burst (a long Redis outage's backlog) does not pin its buffer for good.
                _lines = new ArrayBufferWriter<byte>(InitialBufferBytes);
            }
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

    /// <summary>Empties the file if every record in it is confirmed; false if more were appended meanwhile.</summary>
    public bool TryTruncate()
    {
        lock (_gate)
        {
            if (_file.Length != _confirmed)
            {
                return false;
            }
            _file.SetLength(0);
            _file.Flush(flushToDisk: true);
            _confirmed = 0;
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
