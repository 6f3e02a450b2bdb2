using System.Net;
using System.Text.Json.Nodes;
using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Model;
using Onyx.Gateway.Telemetry;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Telemetry;

/// <summary>AC2.2.6: one structured record per LLM call, one per failed attempt, no secrets.</summary>
public sealed class CallLogTests : GatewayTest
{
    private Task<CapturedLog> CallRecord() =>
        Gateway.Logs.WaitForAsync(r => r.Category == "Onyx.CallLog" && r.EventId == 3001, TimeSpan.FromSeconds(10));

    [Fact]
    public async Task RecordsModelTokensLatencyAndOutcome()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody(stream: true)) };
        request.Headers.Add("x-request-id", "req-calllog-1");
        using var response = await Client.SendAsync(request);
        await response.Content.ReadAsStringAsync();

        var call = await CallRecord();
        Assert.Equal("req-calllog-1", call["RequestId"]);
        Assert.Equal("manus-primary", call["Alias"]);
        Assert.Equal("together_ai/deepseek-ai/DeepSeek-V3", call["Deployment"]);
        Assert.Equal("deepseek-ai/DeepSeek-V3", call["providerModel"]);
        Assert.Equal(true, call["stream"]);
        Assert.Equal(12, call["promptTokens"]);
        Assert.Equal(Gateway.Primary.Tokens.Count, call["completionTokens"]);
        Assert.Equal(12 + Gateway.Primary.Tokens.Count, call["TotalTokens"]);
        Assert.Equal(false, call["tokensEstimated"]);
        Assert.True((double)call["LatencyMs"]! > 0);
        Assert.True((double)call["TtftMs"]! > 0);
        Assert.Equal(true, call["Success"]);
        Assert.Equal(200, call["Status"]);
        Assert.Equal(false, call["fallback"]);
        Assert.Equal(1, call["attempts"]);
        Assert.Null(call["errorType"]);
    }

    [Fact]
    public async Task RecordsEachFailedAttemptAndTheFallback()
    {
        Gateway.Primary.Fault = FakeFault.Status(503);
        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var call = await CallRecord();
        // A 503 is asked once more, then the fallback answers: two failed attempts, three in all.
        var attempts = Gateway.Logs.Records.Where(r => r.EventId == 3002).ToList();
        Assert.Equal(2, attempts.Count);
        Assert.All(attempts, attempt =>
        {
            Assert.Equal("together_ai/deepseek-ai/DeepSeek-V3", attempt["Deployment"]);
            Assert.Equal("http_503", attempt["Reason"]);
            Assert.Equal(call["RequestId"], attempt["RequestId"]);
        });
        Assert.Equal("ollama/mistral:7b-instruct", call["Deployment"]);
        Assert.Equal(true, call["fallback"]);
        Assert.Equal(3, call["attempts"]);
    }

    [Fact]
    public async Task RecordsTheErrorOfAFailedCall()
    {
        Gateway.Primary.Fault = FakeFault.Status(500);
        Gateway.Fallback.Fault = FakeFault.Status(500);
        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);

        var call = await CallRecord();
        Assert.Equal(false, call["Success"]);
        Assert.Equal(503, call["Status"]);
        Assert.Equal("service_unavailable", call["errorType"]);
        Assert.Contains("Every deployment", (string)call["errorMessage"]!);
    }

    [Fact]
    public async Task CountsTokensItselfWhenTheProviderReportsNone()
    {
        // Neither deployment reports usage: on a busy machine the first call of a fresh gateway can outlast the
        // tests' 1 s first-token limit and be answered by the fallback.
        Gateway.Primary.Fault = FakeFault.NoUsage;
        Gateway.Fallback.Fault = FakeFault.NoUsage;
        using var response = await Client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        await response.Content.ReadAsStringAsync();

        var call = await CallRecord();
        Assert.Equal(true, call["Success"]);
        Assert.Equal(true, call["tokensEstimated"]);
        Assert.True((int)call["promptTokens"]! > 0);
        Assert.True((int)call["completionTokens"]! > 0);
    }

    [Fact]
    public async Task NeverLogsKeysOrMessageText()
    {
        Gateway.Primary.FailNext(1, FakeFault.Status(401));
        var secretPrompt = "my-private-prompt-7731";
        using var response = await Client.PostAsync("/v1/chat/completions",
            GatewayHost.Json(GatewayHost.ChatBody(stream: true).Replace("Say hello", secretPrompt, StringComparison.Ordinal)));
        await response.Content.ReadAsStringAsync();
        await CallRecord();

        foreach (var record in Gateway.Logs.Records)
        {
            var text = record.Message + string.Join(' ', record.Fields.Values) + record.Exception;
            Assert.DoesNotContain(GatewayHost.TogetherKey, text);
            Assert.DoesNotContain(secretPrompt, text);
        }
    }
}

/// <summary>The call log's stdout lines: every record one whole JSON line, a burst written in few system calls.</summary>
public sealed class CallLogStdoutTests
{
    [Theory]
    [InlineData(50, 1)]
    // ~400 bytes a line: 400 lines are about 160 KB, written in slices of 64 KB.
    [InlineData(400, 3)]
    public async Task ABurstIsWrittenInSlicesOf64KbAndEveryLineIsWhole(int records, int expectedWrites)
    {
        var output = new RecordingStream();
        var callLog = new CallLogWriter(NullLoggerFactory.Instance, Options.Create(new OnyxOptions()), () => output);

        // Queued before the loop starts, so all of them are one burst.
        for (var i = 0; i < records; i++)
        {
            callLog.Write(Record($"req-{i}"));
        }
        await callLog.StartAsync(CancellationToken.None);
        await output.LineCount(records).WaitAsync(TimeSpan.FromSeconds(10));
        await callLog.StopAsync(CancellationToken.None);

        Assert.Equal(expectedWrites, output.Writes.Count);
        Assert.All(output.Writes, write => Assert.True(write <= 64 * 1024 + 1024, $"a write of {write} bytes"));
        var lines = output.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(Enumerable.Range(0, records).Select(i => $"req-{i}"), lines.Select(line => (string?)JsonNode.Parse(line)!["request_id"]));
    }

    private static LlmCallRecord Record(string requestId) => new()
    {
        Timestamp = DateTimeOffset.UnixEpoch,
        RequestId = requestId,
        Alias = "manus-primary",
        Deployment = "together_ai/deepseek-ai/DeepSeek-V3",
        ProviderModel = "deepseek-ai/DeepSeek-V3",
        ResponseModel = "deepseek-ai/DeepSeek-V3",
        Stream = true,
        Tokens = new TokenCounts(12, 20, 32, Estimated: false),
        LatencyMs = 412.5,
        TtftMs = 20.25,
        Success = true,
        Status = 200,
        Fallback = false,
        Attempts = 1,
    };

    /// <summary>Stands in for stdout: keeps every byte and the size of every write.</summary>
    private sealed class RecordingStream : Stream
    {
        private readonly Lock _gate = new();
        private readonly MemoryStream _bytes = new();
        private readonly List<(int Lines, TaskCompletionSource Done)> _waiters = [];
        private int _lines;

        public List<int> Writes { get; } = [];

        public string Text
        {
            get
            {
                lock (_gate)
                {
                    return Encoding.UTF8.GetString(_bytes.ToArray());
                }
            }
        }

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public Task LineCount(int lines)
        {
            lock (_gate)
            {
                if (_lines >= lines)
                {
                    return Task.CompletedTask;
                }
                var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _waiters.Add((lines, done));
                return done.Task;
            }
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            lock (_gate)
            {
                Writes.Add(buffer.Length);
                _bytes.Write(buffer);
                _lines += buffer.Count((byte)'\n');
                foreach (var waiter in _waiters.Where(w => _lines >= w.Lines))
                {
                    waiter.Done.TrySetResult();
                }
            }
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Write(buffer.Span);
            return ValueTask.CompletedTask;
        }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
