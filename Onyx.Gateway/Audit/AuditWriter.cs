using Microsoft.Extensions.Options;
using Onyx.Gateway.Batching;
using Onyx.Gateway.Cluster;
using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;
using StackExchange.Redis;

namespace Onyx.Gateway.Audit;

/// <summary>
/// Moves audit records from the requests to Redis off the hot path, and loses none it can keep. A request only enqueues
/// its record (<see cref="Write"/>); this background loop writes what has queued up in batches. While Redis is
/// unreachable batches go to this replica's spill file (<see cref="AuditSpill"/>: created on the first spill, named for
/// the trail, bounded), fsync'd, and every <see cref="AuditOptions.RetryInterval"/> the loop replays the file into
/// Redis, in order, before anything newer is written there; the replay is idempotent (<see cref="RedisAuditStream"/>).
/// At start-up it replays the files earlier replicas of the same trail left behind; at shutdown, after the server has
/// drained, it writes what is still queued. Without Redis the audit trail is the standalone <see cref="AuditFile"/>.
/// </summary>
internal sealed partial class AuditWriter : BackgroundService, ICallObserver
{
    /// <summary>The most a shutdown waits for Redis before the queued records go to the spill file instead.</summary>
    private static readonly TimeSpan ShutdownWriteTimeout = TimeSpan.FromSeconds(2);

    private readonly RedisAuditStream? _redis;
    private readonly RedisConnectionWatch? _watch;
    private readonly AuditOptions _options;
    private readonly AuditMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<AuditWriter> _logger;
    private readonly BatchWriter<AuditRecord> _queue;
    private readonly bool _enabled;
    private readonly AuditSpill? _spill;
    private readonly AuditFile? _file;
    private DateTimeOffset _nextReplay;
    private bool _redisDown;
    private bool _stopping;
    private int _overflowReported;
    private int _disposed;

    public AuditWriter(IOptions<AuditOptions> options, ReplicaIdentity replica, AuditMetrics metrics, TimeProvider time,
        ILogger<AuditWriter> logger, RedisAuditStream? redis = null, AuditTrail? trail = null, RedisConnectionWatch? watch = null)
    {
        _options = options.Value;
        _redis = redis;
        _watch = watch;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        Replica = replica.Id;
        IncludeContent = _options.IncludeContent;
        _enabled = _options.Enabled;
        _queue = new BatchWriter<AuditRecord>(_options.QueueCapacity, _options.BatchSize, _options.BatchDelay,
            (batch, final, token) => WriteAsync(batch, final ? ShutdownWriteTimeout : _options.WriteTimeout, token), ReplayIfDueAsync, time);
        if (!_enabled)
        {
            return;
        }

        var (key, directory) = redis is null
            ? (AuditOptions.SectionName + ":File:Directory", _options.File.Directory!)
            : (AuditOptions.SectionName + ":SpillDirectory", _options.SpillDirectory!);
        try
        {
            if (redis is null)
            {
                _file = new AuditFile(_options.File, metrics, logger);
            }
            else
            {
                _spill = new AuditSpill(directory, trail ?? throw new ArgumentNullException(nameof(trail)), Replica, _options.SpillMaxBytes, metrics, logger);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // No half-working start: a gateway that could not keep its records when Redis goes away must not serve.
            throw new OptionsValidationException(AuditOptions.SectionName, typeof(AuditOptions),
                [$"{key}: cannot write audit files in '{directory}': {ex.Message}"]);
        }
        _metrics.Observe(() => _queue.Pending, () => _spill?.PendingBytes ?? 0);
    }

    /// <summary>Record the request's messages and answer (<see cref="AuditOptions.IncludeContent"/>).</summary>
    public bool IncludeContent { get; }

    bool ICallObserver.WantsContent => IncludeContent;

    /// <summary>This replica, as the records name it.</summary>
    public string Replica { get; }

    /// <summary>Bytes of records in this replica's spill file that Redis does not have yet.</summary>
    public long SpilledBytes => _spill?.PendingBytes ?? 0;

    /// <summary>
    /// Queues a record; never waits for Redis. When the queue is full (Redis slow and a burst), the record is
    /// appended to the spill file right here instead: a file write on this request, rather than a lost record.
    /// </summary>
    public void Write(AuditRecord record)
    {
        if (!_enabled || _queue.TryAdd(record))
        {
            return;
        }
        try
        {
            AppendLocally([record]);
        }
        catch (ObjectDisposedException)
        {
            // Only a call still running after the host's shutdown timeout, when the process is going away.
            Log.LostAtExit(_logger, record.RequestId);
            return;
        }
        if (Interlocked.Exchange(ref _overflowReported, 1) == 0)
        {
            Log.QueueFull(_logger, _options.QueueCapacity, LocalPath);
        }
    }

    /// <summary>The file records go to when they do not go to Redis.</summary>
    private string LocalPath => _spill?.Path ?? _file?.Path ?? "";

    /// <summary>Records of this replica's spill file or of earlier replicas' wait to be replayed.</summary>
    private bool HasSpilled => _spill is { } spill && (spill.HasPending || spill.Orphans.Count > 0);

    /// <summary>
    /// Waits for the final flush whatever the host's shutdown token says: it is bounded by itself (one Redis write of
    /// at most 2 s, then the file), and a record still in memory when the process exits would be lost.
    /// </summary>
    public override Task StopAsync(CancellationToken cancellationToken) => base.StopAsync(CancellationToken.None);

    void ICallObserver.CallEnded(CallRecord call) => Write(new AuditRecord
    {
        AuditId = UniqueIds.NewVersion7(call.Timestamp),
        Timestamp = call.Timestamp,
        RequestId = call.RequestId,
        Replica = Replica,
        KeyName = call.KeyName,
        UserId = call.UserId,
        EndUser = call.EndUser,
        ClientAddress = call.ClientAddress,
        Alias = call.Alias,
        Stream = call.Stream,
        Status = call.Status,
        Success = call.Success,
        Error = call.Error,
        Deployment = call.Deployment,
        ResponseModel = call.ResponseModel,
        Fallback = call.Fallback,
        Attempts = call.Steps,
        Tokens = call.Tokens,
        CostUsd = call.CostUsd,
        LatencyMs = call.LatencyMs,
        TtftMs = call.TtftMs,
        Resumed = call.Resumed,
        Content = IncludeContent ? call.Content : null,
    });

    /// <summary>Records a request refused before routing (403 model not allowed, 429 rate limit): no deployment tried.</summary>
    public void Refused(string requestId, ChatRequest request, string userId, string? keyName, string? clientAddress, int status, OpenAiError error)
    {
        var now = _time.GetUtcNow();
        Write(new AuditRecord
        {
            AuditId = UniqueIds.NewVersion7(now),
            Timestamp = now,
            RequestId = requestId,
            Replica = Replica,
            KeyName = keyName,
            UserId = userId,
            EndUser = request.User,
            ClientAddress = clientAddress,
            Alias = request.Model,
            Stream = request.Stream,
            Status = status,
            Success = false,
            Error = new CallError(error.Code ?? error.Type, error.Message),
            Fallback = false,
            Attempts = [],
            Tokens = new TokenCounts(0, 0, 0, Estimated: false),
            LatencyMs = 0,
            Content = IncludeContent ? new CallContent(request.Messages, null) : null,
        });
    }

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        if (!_enabled)
        {
            Log.Disabled(_logger);
            return Task.CompletedTask;
        }
        if (_file is not null)
        {
            Log.NoRedis(_logger, _file.Path, _options.File.MaxBytes, _options.File.MaxFiles);
        }
        if (_spill is not null)
        {
            Log.Trail(_logger, _spill.Trail.Name, _spill.Directory, _options.SpillMaxBytes);
            if (_spill.Others.Count > 0)
            {
                Log.OthersLeftAlone(_logger, _spill.Others.Count, _spill.Directory, string.Join(", ", _spill.Others.Take(5)));
            }
            if (_spill.Orphans.Count > 0)
            {
                Log.LeftoverFound(_logger, _spill.Orphans.Count, _spill.Directory);
            }
        }
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await _queue.RunAsync(stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down: the server has drained, so every finished call's record is queued. Written below.
        }
        // A record arriving after this (a request ended past the host's shutdown timeout) goes to the file in Write.
        _stopping = true;
        Log.Stopping(_logger, _queue.Pending);
        var flushed = await _queue.DrainAsync();
        Log.Flushed(_logger, flushed, _spill?.PendingBytes ?? 0, LocalPath);
    }

    /// <summary>
    /// Between batches: replays the spill file into Redis when a replay is due, and asks to be woken for the next one
    /// while records wait in the file, even if nothing new comes.
    /// </summary>
    private async Task<TimeSpan?> ReplayIfDueAsync(CancellationToken stoppingToken)
    {
        if (_redis is null || !HasSpilled)
        {
            return null;
        }
        if (ReplayDue())
        {
            await ReplayAsync(_redis, stoppingToken);
        }
        return HasSpilled ? _nextReplay - _time.GetUtcNow() : null;
    }

    /// <summary>To Redis when it is there and nothing older is waiting in the spill file; otherwise to the file.</summary>
    private async Task WriteAsync(List<AuditRecord> batch, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (batch.Count == 0)
        {
            return;
        }
        // The last write at shutdown tries Redis whatever the watch says (at most ShutdownWriteTimeout): a Redis that
        // was only too slow a moment ago may take the records now, and the spill file waits for the next start.
        if (_redis is not null && !_spill!.HasPending && !_redisDown && (_stopping || _watch?.IsUp != false))
        {
            try
            {
                await _redis.AddAsync(batch, timeout, cancellationToken);
                _metrics.Written(batch.Count, AuditMetrics.Redis);
                return;
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                _watch?.CallFailed("audit", ex);
                RedisFailed(ex.Message);
            }
        }
        else if (_redis is not null && !_stopping && _watch?.State is { Up: false } down)
        {
            // Not even tried: the watch says Redis is unreachable.
            RedisFailed(down.Reason ?? "unknown");
        }
        AppendLocally(batch);
    }

    /// <summary>To the spill file (with Redis) or the standalone audit file; each counts and bounds what it takes.</summary>
    private void AppendLocally(IReadOnlyList<AuditRecord> records)
    {
        if (_spill is not null)
        {
            _spill.Append(records);
        }
        else
        {
            _file?.Append(records);
        }
    }

    /// <summary>The files of gone replicas first (older records), then this replica's own, each from where it stopped.</summary>
    private async Task ReplayAsync(RedisAuditStream redis, CancellationToken cancellationToken)
    {
        try
        {
            var spill = _spill!;
            foreach (var orphan in spill.Orphans.ToList())
            {
                var (replayed, duplicates) = await ReplayFileAsync(redis, orphan, cancellationToken);
                spill.Replayed(orphan);
                Log.Replayed(_logger, replayed, duplicates, orphan.Path);
            }
            while (spill.Own is { HasPending: true } own)
            {
                var (replayed, duplicates) = await ReplayFileAsync(redis, own, cancellationToken);
                if (spill.TryTruncate())
                {
                    Log.Replayed(_logger, replayed, duplicates, own.Path);
                }
            }
            if (_redisDown)
            {
                _redisDown = false;
                Log.RedisBack(_logger);
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            _watch?.CallFailed("audit", ex);
            RedisFailed(ex.Message);
        }
    }

    private async Task<(int Replayed, int Duplicates)> ReplayFileAsync(RedisAuditStream redis, AuditSpillFile file, CancellationToken cancellationToken)
    {
        int replayed = 0, duplicates = 0;
        while (true)
        {
            var (records, end) = file.ReadNext(_options.BatchSize, out var unreadable);
            if (unreadable > 0)
            {
                Log.Unreadable(_logger, unreadable, file.Path);
            }
            if (records.Count > 0)
            {
                var added = await redis.AddAsync(records, _options.WriteTimeout, cancellationToken);
                _metrics.Replayed(added, records.Count - added);
                replayed += added;
                duplicates += records.Count - added;
            }
            file.Confirm(end);
            if (records.Count < _options.BatchSize)
            {
                return (replayed, duplicates);
            }
        }
    }

    private void RedisFailed(string error)
    {
        _nextReplay = _time.GetUtcNow() + _options.RetryInterval;
        if (!_redisDown)
        {
            _redisDown = true;
            Log.RedisDown(_logger, LocalPath, error);
        }
    }

    /// <summary>A replay is tried when its time has come and the watch says Redis is up; otherwise one interval later.</summary>
    private bool ReplayDue()
    {
        var now = _time.GetUtcNow();
        if (now < _nextReplay)
        {
            return false;
        }
        if (_watch?.IsUp == false)
        {
            _nextReplay = now + _options.RetryInterval;
            return false;
        }
        return true;
    }

    public override void Dispose()
    {
        // Registered as itself and as a hosted service: disposed twice.
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }
        base.Dispose();
        _spill?.Dispose();
        _file?.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(8001, LogLevel.Warning, "Audit: Redis is unreachable ({Error}); records go to {SpillPath} and are replayed when it answers")]
        public static partial void RedisDown(ILogger logger, string spillPath, string error);

        [LoggerMessage(8002, LogLevel.Information, "Audit: Redis is back; spilled records replayed")]
        public static partial void RedisBack(ILogger logger);

        [LoggerMessage(8003, LogLevel.Information, "Audit: replayed {Replayed} records from {SpillPath} ({Duplicates} already in Redis, skipped)")]
        public static partial void Replayed(ILogger logger, int replayed, int duplicates, string spillPath);

        [LoggerMessage(8004, LogLevel.Warning, "Audit: {Count} unreadable lines in {SpillPath} (a write torn by a crash) passed over")]
        public static partial void Unreadable(ILogger logger, int count, string spillPath);

        [LoggerMessage(8005, LogLevel.Warning, "Audit: the writer's queue ({Capacity} records) is full; records are appended to {SpillPath} by the requests themselves")]
        public static partial void QueueFull(ILogger logger, int capacity, string spillPath);

        [LoggerMessage(8006, LogLevel.Warning, "Audit: no Redis configured (ConnectionStrings:redis): the audit trail is the standalone file {AuditPath} (rotated at {MaxBytes} bytes, {MaxFiles} files kept), never replayed into Redis; GET /audit answers 503")]
        public static partial void NoRedis(ILogger logger, string auditPath, long maxBytes, int maxFiles);

        [LoggerMessage(8007, LogLevel.Information, "Audit: {Files} spill files of this trail with unreplayed records found in {SpillDirectory}; replaying them")]
        public static partial void LeftoverFound(ILogger logger, int files, string spillDirectory);

        [LoggerMessage(8013, LogLevel.Information, "Audit: {Count} files in {SpillDirectory} are not this trail's (other trails, a standalone audit file, an older layout) and are left alone: {Files}")]
        public static partial void OthersLeftAlone(ILogger logger, int count, string spillDirectory, string files);

        [LoggerMessage(8015, LogLevel.Warning, "Audit: switched off (Onyx:Audit:Enabled=false): no audit record is written")]
        public static partial void Disabled(ILogger logger);

        [LoggerMessage(8017, LogLevel.Information, "Audit: trail {Trail}; while Redis is unreachable its records are spilled to {SpillDirectory} (at most {MaxBytes} bytes per replica)")]
        public static partial void Trail(ILogger logger, string trail, string spillDirectory, long maxBytes);

        [LoggerMessage(8009, LogLevel.Error, "Audit: the record of request {RequestId} ended after the writer had closed at exit, and is lost")]
        public static partial void LostAtExit(ILogger logger, string requestId);

        [LoggerMessage(8010, LogLevel.Information, "Audit: stopping; writing the {Count} records still queued")]
        public static partial void Stopping(ILogger logger, int count);

        [LoggerMessage(8008, LogLevel.Information, "Audit: shutdown wrote the {Count} queued records; {PendingBytes} bytes of spilled records wait in {SpillPath} for the next start")]
        public static partial void Flushed(ILogger logger, int count, long pendingBytes, string spillPath);
    }
}
