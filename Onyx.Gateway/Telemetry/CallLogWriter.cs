using System.Buffers;
using System.Text.Json.Serialization;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Batching;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Model;

namespace Onyx.Gateway.Telemetry;

/// <summary>The structured record of one LLM call (the story's AC2.2.6). Never holds keys or message text.</summary>
internal sealed record LlmCallRecord
{
    [JsonPropertyName("event")] public string Event => "llm_call";
    [JsonPropertyName("timestamp")] public required DateTimeOffset Timestamp { get; init; }
    [JsonPropertyName("request_id")] public required string RequestId { get; init; }
    [JsonPropertyName("alias")] public required string Alias { get; init; }
    /// <summary>The user the call counts against (the API key's user; never the key).</summary>
    [JsonPropertyName("user_id")] public string? UserId { get; init; }
    /// <summary>The key's masked name (<c>sk-...x4Qz</c>) or alias.</summary>
    [JsonPropertyName("key_name")] public string? KeyName { get; init; }
    [JsonPropertyName("deployment")] public string? Deployment { get; init; }
    [JsonPropertyName("provider_model")] public string? ProviderModel { get; init; }
    [JsonPropertyName("response_model")] public string? ResponseModel { get; init; }
    [JsonPropertyName("stream")] public required bool Stream { get; init; }
    [JsonPropertyName("tokens")] public required TokenCounts Tokens { get; init; }
    [JsonPropertyName("latency_ms")] public required double LatencyMs { get; init; }
    [JsonPropertyName("ttft_ms")] public double? TtftMs { get; init; }
    [JsonPropertyName("success")] public required bool Success { get; init; }
    [JsonPropertyName("status")] public required int Status { get; init; }
    [JsonPropertyName("error")] public CallError? Error { get; init; }
    [JsonPropertyName("fallback")] public required bool Fallback { get; init; }
    [JsonPropertyName("attempts")] public required int Attempts { get; init; }
    /// <summary>Where a streamed answer broke and which deployment continued it (absent when it never broke).</summary>
    [JsonPropertyName("resumed")] public IReadOnlyList<ResumedAt>? Resumed { get; init; }
    /// <summary>What the call cost in US dollars, from its deployment's price (absent when the config names no price).</summary>
    [JsonPropertyName("cost_usd")] public decimal? CostUsd { get; init; }
}

/// <summary>One failed attempt within a call, with the reason the router moved on.</summary>
internal sealed record LlmAttemptRecord
{
    [JsonPropertyName("event")] public string Event => "llm_attempt_failed";
    [JsonPropertyName("timestamp")] public required DateTimeOffset Timestamp { get; init; }
    [JsonPropertyName("request_id")] public required string RequestId { get; init; }
    [JsonPropertyName("alias")] public required string Alias { get; init; }
    [JsonPropertyName("deployment")] public required string Deployment { get; init; }
    [JsonPropertyName("attempt")] public required int AttemptNumber { get; init; }
    [JsonPropertyName("reason")] public required string Reason { get; init; }
    [JsonPropertyName("message")] public required string Message { get; init; }
    [JsonPropertyName("elapsed_ms")] public required double ElapsedMs { get; init; }
}

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(LlmCallRecord))]
[JsonSerializable(typeof(LlmAttemptRecord))]
internal sealed partial class CallLogJsonContext : JsonSerializerContext;

/// <summary>
/// Writes each record twice: as an OpenTelemetry log record with named fields (to the Aspire dashboard or any
/// OTLP backend; category <see cref="Category"/>), and as one JSON line on stdout for log shippers. The stdout
/// line is written by a background loop, so a slow terminal or pipe never holds up an answer.
/// </summary>
internal sealed partial class CallLogWriter : BackgroundService, ICallObserver
{
    public const string Category = "Onyx.CallLog";

    private readonly ILogger _logger;
    private readonly bool _stdoutEnabled;
    private readonly BatchWriter<object> _lines;
    private readonly ArrayBufferWriter<byte> _buffer = new(WriteSize);
    private readonly Utf8JsonWriter _json;
    private Stream? _stdout;

    private readonly Func<Stream> _openOutput;

    private static readonly TimeSpan BatchDelay = TimeSpan.FromMilliseconds(20);
    private const int WriteSize = 64 * 1024;

    public CallLogWriter(ILoggerFactory loggerFactory, IOptions<OnyxOptions> options)
        : this(loggerFactory, options, Console.OpenStandardOutput)
    {
    }

    /// <summary>For tests: <paramref name="openOutput"/> stands in for stdout.</summary>
    internal CallLogWriter(ILoggerFactory loggerFactory, IOptions<OnyxOptions> options, Func<Stream> openOutput)
    {
        _openOutput = openOutput;
        // The writer targets the buffer, not the stream: Utf8JsonWriter.Flush on a stream also flushes the stream,
        // which would make every line its own system call.
        _json = new Utf8JsonWriter(_buffer);
        // A burst shares one write per BatchDelay (each write is a system call on the gateway's cores); a line is at
        // most that late, and at shutdown the queue is written at once.
        _lines = new BatchWriter<object>(10_000, 1024, BatchDelay, WriteLinesAsync);
        _logger = loggerFactory.CreateLogger(Category);
        _stdoutEnabled = options.Value.CallLog.Stdout;
    }

    public void Write(LlmCallRecord record)
    {
        Log.Call(_logger, record.RequestId, record.Alias, record.UserId, record.KeyName, record.Deployment, record.ProviderModel, record.ResponseModel,
            record.Stream, record.Tokens.Prompt, record.Tokens.Completion, record.Tokens.Total, record.Tokens.Estimated,
            record.LatencyMs, record.TtftMs, record.Success, record.Status, record.Error?.Type, record.Error?.Message,
            record.Fallback, record.Attempts,
            record.Resumed is { } resumes ? string.Join("; ", resumes.Select(r => $"{r.From} -> {r.To} at {r.AtChars} chars ({r.Reason}, {r.How})")) : null,
            record.CostUsd);
        Enqueue(record);
    }

    void ICallObserver.CallEnded(CallRecord call) => Write(new LlmCallRecord
    {
        Timestamp = call.Timestamp,
        RequestId = call.RequestId,
        Alias = call.Alias,
        UserId = call.UserId,
        KeyName = call.KeyName,
        Deployment = call.Deployment,
        ProviderModel = call.ProviderModel,
        ResponseModel = call.ResponseModel,
        Stream = call.Stream,
        Tokens = call.Tokens,
        LatencyMs = call.LatencyMs,
        TtftMs = call.TtftMs,
        Success = call.Success,
        Status = call.Status,
        Error = call.Error,
        Fallback = call.Fallback,
        Attempts = call.AttemptCount,
        Resumed = call.Resumed,
        CostUsd = call.CostUsd,
    });

    void ICallObserver.AttemptFailed(AttemptFailure failure) => Write(new LlmAttemptRecord
    {
        Timestamp = failure.Timestamp,
        RequestId = failure.RequestId,
        Alias = failure.Alias,
        Deployment = failure.Deployment,
        AttemptNumber = failure.AttemptNumber,
        Reason = failure.Reason,
        Message = failure.Message,
        ElapsedMs = failure.ElapsedMs,
    });

    public void Write(LlmAttemptRecord record)
    {
        Log.AttemptFailed(_logger, record.RequestId, record.Alias, record.Deployment, record.AttemptNumber, record.Reason, record.Message, record.ElapsedMs);
        Enqueue(record);
    }

    private void Enqueue(object record)
    {
        if (_stdoutEnabled && !_lines.TryAdd(record))
        {
            Log.Dropped(_logger);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await using var stdout = _stdout = _openOutput();
        try
        {
            await _lines.RunAsync(stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down: write what is queued, then stop.
        }
        await _lines.DrainAsync();
    }

    /// <summary>The batch as JSON lines, in writes of about <see cref="WriteSize"/> bytes.</summary>
    private async Task WriteLinesAsync(List<object> batch, bool final, CancellationToken cancellationToken)
    {
        // A batch that failed is written again whole (the drain does): what it left unwritten must not go out twice.
        _buffer.ResetWrittenCount();
        foreach (var record in batch)
        {
            switch (record)
            {
                case LlmCallRecord call:
                    JsonSerializer.Serialize(_json, call, CallLogJsonContext.Default.LlmCallRecord);
                    break;
                case LlmAttemptRecord attempt:
                    JsonSerializer.Serialize(_json, attempt, CallLogJsonContext.Default.LlmAttemptRecord);
                    break;
            }
            _json.Flush();
            _json.Reset();
            _buffer.GetSpan(1)[0] = (byte)'\n';
            _buffer.Advance(1);
            if (_buffer.WrittenCount >= WriteSize)
            {
                await FlushBufferAsync();
            }
        }
        await FlushBufferAsync();
    }

    /// <remarks>
    /// Never cancelled: a batch whose write stopped halfway at shutdown would be written again by the drain, and its
    /// first lines would reach stdout twice. The host's shutdown timeout bounds a stdout that does not drain.
    /// </remarks>
    private async Task FlushBufferAsync()
    {
        if (_buffer.WrittenCount == 0 || _stdout is not { } stdout)
        {
            return;
        }
        await stdout.WriteAsync(_buffer.WrittenMemory, CancellationToken.None);
        _buffer.ResetWrittenCount();
        await stdout.FlushAsync(CancellationToken.None);
    }

    public override void Dispose()
    {
        _json.Dispose();
        base.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(3001, LogLevel.Information,
            "LLM call {RequestId} {Alias} -> {Deployment}: success={Success} status={Status} latency_ms={LatencyMs} ttft_ms={TtftMs} tokens={TotalTokens}")]
        public static partial void Call(ILogger logger, string requestId, string alias, string? userId, string? keyName, string? deployment, string? providerModel,
            string? responseModel, bool stream, int promptTokens, int completionTokens, int totalTokens, bool tokensEstimated,
            double latencyMs, double? ttftMs, bool success, int status, string? errorType, string? errorMessage, bool fallback, int attempts, string? resumed,
            decimal? costUsd);

        [LoggerMessage(3002, LogLevel.Warning,
            "LLM attempt failed {RequestId} {Alias} -> {Deployment} (attempt {Attempt}): {Reason}: {Message} after {ElapsedMs} ms")]
        public static partial void AttemptFailed(ILogger logger, string requestId, string alias, string deployment, int attempt,
            string reason, string message, double elapsedMs);

        [LoggerMessage(3003, LogLevel.Warning, "Call log queue is full; a stdout line was dropped (the OpenTelemetry record was written)")]
        public static partial void Dropped(ILogger logger);
    }
}
