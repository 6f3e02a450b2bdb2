using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Audit;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;
using StackExchange.Redis;

namespace Onyx.Gateway.Tests.Audit;

/// <summary>
/// The audit trail in a real redis-server: one record per request with the right fields, nothing lost or
/// duplicated when Redis dies mid-burst or the gateway stops, and <c>GET /audit</c> for the master key.
/// </summary>
public sealed class AuditTrailTests : ReplicasOnOneRedis, IDisposable
{
    public const string StreamKey = "onyx:{audit}";

    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    // Redis persists to this directory, so a server killed and restarted keeps what it had, as a production one does.
    private readonly string _redisData = Directory.CreateTempSubdirectory("onyx-audit-redis-").FullName;

    private readonly List<string> _directories = [];

    protected override string? RedisDataDirectory => _redisData;

    protected override Dictionary<string, string?> ReplicaSettings => new()
    {
        ["LITELLM_MASTER_KEY"] = TestKeys.MasterKey,
        ["Onyx:Audit:RetryInterval"] = "00:00:00.100",
        // The primary has a price (per million tokens), the fallback none: its records carry no cost.
        ["model_list:0:litellm_params:input_cost_per_million_tokens"] = "1.25",
        ["model_list:0:litellm_params:output_cost_per_million_tokens"] = "2.5",
    };

    [Fact]
    public async Task EveryRequestLeavesOneRecordWithWhoWhatAndHowItWent()
    {
        var gateway = await StartReplicaAsync();
        var key = await TestKeys.GenerateAsync(gateway, """{"user_id":"audit-user"}""");
        using var client = gateway.CreateClient(key);

        var requestIds = new List<string>();
        for (var i = 0; i < 6; i++)
        {
            if (i == 4)
            {
                gateway.Primary.Fault = FakeFault.Status(503);
            }
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = GatewayHost.Json(GatewayHost.ChatBody(stream: i % 2 == 1, extra: ""","user":"end-user-7" """)),
            };
            request.Headers.Add("x-request-id", $"audit-req-{i}");
            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await response.Content.ReadAsStringAsync();
            requestIds.Add($"audit-req-{i}");
        }

        var entries = await WaitForEntriesAsync(6);
        var records = entries.Select(Record).ToList();
        Assert.Equal(requestIds, records.Select(r => (string)r["request_id"]!));
        Assert.Equal(6, records.Select(r => (string)r["audit_id"]!).Distinct().Count());
        foreach (var (record, i) in records.Select((r, i) => (r, i)))
        {
            Assert.Equal("audit-user", (string)record["user_id"]!);
            Assert.StartsWith("sk-...", (string)record["key_name"]!);
            Assert.Equal("end-user-7", (string)record["end_user"]!);
            Assert.Equal("127.0.0.1", (string)record["client_address"]!);
            Assert.Equal("manus-primary", (string)record["alias"]!);
            Assert.Equal(i % 2 == 1, (bool)record["stream"]!);
            Assert.Equal(200, (int)record["status"]!);
            Assert.True((bool)record["success"]!);
            Assert.True((double)record["latency_ms"]! > 0);
            Assert.Equal(12, (int)record["tokens"]!["prompt"]!);
            Assert.True((int)record["tokens"]!["completion"]! > 0);
            Assert.True(record.AsObject().ContainsKey("cost_usd"));
            if (i < 4)
            {
                var completion = (int)record["tokens"]!["completion"]!;
                Assert.Equal((12 * 1.25m + completion * 2.5m) / 1_000_000m, (decimal)record["cost_usd"]!);
            }
            else
            {
                Assert.Null(record["cost_usd"]);
            }
            Assert.Equal(i % 2 == 1, record["ttft_ms"] is not null);
            Assert.Null(record["content"]);
            Assert.Equal((string)record["user_id"]!, (string)entries[i]["user"]!);
        }
        // The first requests were answered by the primary; the last two failed over, and the record says why.
        Assert.Equal("together_ai/deepseek-ai/DeepSeek-V3", (string)records[0]["deployment"]!);
        Assert.Equal("""[{"deployment":"together_ai/deepseek-ai/DeepSeek-V3","outcome":"success","status":200,"elapsed_ms":X}]""",
            Normalize(records[0]["attempts"]!));
        Assert.True((bool)records[5]["fallback"]!);
        Assert.Equal("ollama/mistral:7b-instruct", (string)records[5]["deployment"]!);
        // A 503 is asked once more before the fallback; here the third failure opened the breaker, so the retry was skipped.
        Assert.Equal("""[{"deployment":"together_ai/deepseek-ai/DeepSeek-V3","outcome":"failed","reason":"http_503","status":503,"elapsed_ms":X},"""
            + """{"deployment":"together_ai/deepseek-ai/DeepSeek-V3","outcome":"skipped","reason":"circuit open","elapsed_ms":X},"""
            + """{"deployment":"ollama/mistral:7b-instruct","outcome":"success","status":200,"elapsed_ms":X}]""", Normalize(records[5]["attempts"]!));

        // Nothing the caller must keep secret, and (by default) nothing they said, in the stream or the logs.
        var stored = string.Join("\n", entries.SelectMany(e => e.Values.Select(v => v.ToString())));
        var logged = string.Join("\n", gateway.Logs.Records.Select(r => r.Message + string.Join(",", r.Fields.Values)));
        foreach (var captured in new[] { stored, logged })
        {
            Assert.DoesNotContain(key, captured, StringComparison.Ordinal);
            Assert.DoesNotContain(TestKeys.MasterKey, captured, StringComparison.Ordinal);
            Assert.DoesNotContain(GatewayHost.TogetherKey, captured, StringComparison.Ordinal);
            Assert.DoesNotContain("Say hello", captured, StringComparison.Ordinal);
            Assert.DoesNotContain(gateway.Primary.ExpectedText, captured, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task RequestsRefusedBeforeRoutingAreAuditedWithTheirReason()
    {
        var gateway = await StartReplicaAsync(new() { ["Onyx:RateLimits:RedisTimeout"] = "00:00:10", ["Onyx:Auth:RedisTimeout"] = "00:00:10" });
        var key = await TestKeys.GenerateAsync(gateway, """{"user_id":"limited","rpm_limit":1,"models":["manus-primary"]}""");
        using var client = gateway.CreateClient(key);
        var codes = new List<string?>();
        foreach (var (model, status) in new[] { ("manus-primary", HttpStatusCode.OK), ("manus-fallback", HttpStatusCode.Forbidden), ("manus-primary", HttpStatusCode.TooManyRequests) })
        {
            using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(model)));
            Assert.Equal(status, response.StatusCode);
            codes.Add(status == HttpStatusCode.OK ? null : (string?)(await OpenAiResponses.ErrorOf(response, status))["code"]);
        }

        var records = (await WaitForEntriesAsync(3)).Select(Record).ToList();
        Assert.Equal([200, 403, 429], records.Select(r => (int)r["status"]!));
        Assert.Equal(["manus-primary", "manus-fallback", "manus-primary"], records.Select(r => (string)r["alias"]!));
        Assert.All(records, r => Assert.Equal("limited", (string)r["user_id"]!));
        Assert.Equal(codes.Skip(1), records.Skip(1).Select(r => (string?)r["error"]!["type"]));
        Assert.All(records.Skip(1), r => Assert.Empty(r["attempts"]!.AsArray()));
        Assert.Equal(1, gateway.Primary.Calls);
    }

    [Fact]
    public async Task WithIncludeContentTheRecordHoldsTheMessagesAndTheAnswer()
    {
        // The LiteLLM-style switch in the config file's general_settings.
        var gateway = await StartReplicaAsync(new() { ["general_settings:audit:include_content"] = "true" });
        using var client = gateway.CreateClient(TestKeys.MasterKey);
        foreach (var stream in new[] { false, true })
        {
            using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: stream)));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await response.Content.ReadAsStringAsync();
        }

        var records = (await WaitForEntriesAsync(2)).Select(Record).ToList();
        foreach (var record in records)
        {
            Assert.Equal("""[{"role":"user","content":"Say hello"}]""", record["content"]!["messages"]!.ToJsonString());
            Assert.Equal(gateway.Primary.ExpectedText, (string)record["content"]!["answer"]!);
            Assert.Equal("master", (string)record["user_id"]!);
            Assert.Equal("master key", (string)record["key_name"]!);
        }
    }

    [Fact]
    public async Task TheAnswerOfAResumedStreamIsTheOneTheClientReceived()
    {
        var gateway = await StartReplicaAsync(new() { ["Onyx:Audit:IncludeContent"] = "true" });
        using var client = gateway.CreateClient(TestKeys.MasterKey);
        // Cut after "Once upon"; the fallback refuses the prefilled continuation, is asked anew, and its answer is
        // spliced after what the client already had.
        gateway.Primary.Update(b => b with { Tokens = ["Once", " upon", " a", " time"], Fault = FakeFault.DropAfter(2) });
        gateway.Fallback.Update(b => b with { Tokens = ["Once", " upon", " a", " time", " there"], Continuation = FakeContinuation.RefusesPrefill });
        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        var received = Sse.Content(Sse.Events(await response.Content.ReadAsStringAsync()));

        var record = Record(Assert.Single(await WaitForEntriesAsync(1)));
        Assert.Equal("Once upon a time there", received);
        Assert.Equal(received, (string)record["content"]!["answer"]!);
        Assert.Equal("""[{"from":"together_ai/deepseek-ai/DeepSeek-V3","to":"ollama/mistral:7b-instruct","at_chars":9,"reason":"stream_broken","how":"replayed"}]""",
            record["resumed"]!.ToJsonString());
        // The refused prefill is an attempt of its own.
        Assert.Equal(["failed:stream_broken", "failed:http_400", "success:"], record["attempts"]!.AsArray().Select(a => $"{a!["outcome"]}:{a["reason"]}"));
    }

    [Fact]
    public async Task RedisKilledMidBurstAndRestartedStillHoldsEachRecordOnceInOrder()
    {
        const int Total = 30;
        var gateway = await StartReplicaAsync();
        using var client = gateway.CreateClient(TestKeys.MasterKey);
        var port = Redis.Port;
        var ids = new List<string>();
        for (var i = 0; i < Total; i++)
        {
            if (i == 10)
            {
                await Redis.DisposeAsync();
            }
            if (i == 20)
            {
                // Records 10–19 were spilled: the writer said so.
                await gateway.Logs.WaitForAsync(r => r.EventId == 8001, Deadline);
                Redis = await RedisServerProcess.StartAsync(Deadline, port, _redisData);
            }
            using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: i % 3 == 0)));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await response.Content.ReadAsStringAsync();
            ids.Add(OpenAiResponses.Header(response, "x-request-id")!);
        }

        var records = (await WaitForEntriesAsync(Total)).Select(Record).ToList();
        await gateway.Logs.WaitForAsync(r => r.EventId == 8003, Deadline);
        Assert.Equal(ids, records.Select(r => (string)r["request_id"]!));
        Assert.Equal(Total, records.Select(r => (string)r["audit_id"]!).Distinct().Count());
        await AssertStaysAsync(Total);
    }

    [Fact]
    public async Task TheIdSetNeverHoldsMoreIdsThanTheStreamKeepsRecords()
    {
        const int Total = 12;
        var gateway = await StartReplicaAsync(new() { ["Onyx:Audit:MaxLength"] = "5" });
        using var client = gateway.CreateClient(TestKeys.MasterKey);
        string? last = null;
        for (var i = 0; i < Total; i++)
        {
            using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            last = OpenAiResponses.Header(response, "x-request-id");
        }

        // Once the last request's record is the stream's newest, every batch is written.
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        var database = redis.GetDatabase();
        var entries = await RedisWrites.WaitForAsync(Redis.ConnectionString, () => database.StreamRangeAsync(StreamKey),
            stream => stream is [.., var newest] && (string?)Record(newest)["request_id"] == last, Deadline, "the last request's audit record");
        // MAXLEN ~ trims the stream approximately (it keeps at least 5), the id set exactly: the five newest ids.
        Assert.InRange(entries.Length, 5, Total);
        var ids = await database.SortedSetRangeByRankAsync(StreamKey + ":ids");
        Assert.Equal(entries.TakeLast(5).Select(e => (string)e["id"]!).Order(StringComparer.Ordinal),
            ids.Select(id => (string)id!).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task TheIdSetKeepsTheNewestRecordsWhenIdsOfOneMillisecondSortTheOtherWay()
    {
        const string Key = "onyx:{audit-order}";
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        // A clock that stands still: every record below is written in the same millisecond, where version-7 ids
        // sort by their random part, here the reverse of the order they are written in.
        var stream = new RedisAuditStream(redis, Options.Create(new AuditOptions { StreamKey = Key, MaxLength = 2, MaxAge = null }),
            TestClock.Create());

        Assert.Equal(3, await stream.AddAsync([AuditRecords.Sample("f0"), AuditRecords.Sample("e0"), AuditRecords.Sample("d0")], Deadline, CancellationToken.None));
        Assert.Equal(1, await stream.AddAsync([AuditRecords.Sample("c0")], Deadline, CancellationToken.None));

        var database = redis.GetDatabase();
        var entries = await database.StreamRangeAsync(Key);
        var ids = await database.SortedSetRangeByRankAsync(Key + ":ids");
        Assert.Equal(["d0", "c0"], entries.TakeLast(2).Select(e => (string)e["id"]!));
        Assert.Equal(["d0", "c0"], ids.Select(id => (string)id!));
        // Written again, the newest two are known and add nothing.
        Assert.Equal(0, await stream.AddAsync([AuditRecords.Sample("d0"), AuditRecords.Sample("c0")], Deadline, CancellationToken.None));
    }

    [Fact]
    public async Task ARestartedGatewayReplaysTheFileItsPredecessorLeftAndSkipsWhatRedisHas()
    {
        var spill = Directory.CreateTempSubdirectory("onyx-audit-spill-").FullName;
        _directories.Add(spill);
        {
            var first = await StartReplicaAsync(new() { [GatewayHost.SpillDirectoryKey] = spill });
            using (var client = first.CreateClient(TestKeys.MasterKey))
            {
                for (var i = 0; i < 3; i++)
                {
                    using var ok = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
                    Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
                }
                var written = await WaitForEntriesAsync(3);
                var port = Redis.Port;
                await Redis.DisposeAsync();
                for (var i = 0; i < 5; i++)
                {
                    using var ok = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
                    Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
                }
                // Stopped while Redis is down: the queued records go to its spill file, which names the trail.
                await first.DisposeAsync();
                var file = Assert.Single(Directory.GetFiles(spill, "*.jsonl"));
                var lines = await AuditFiles.ReadLinesAsync(file);
                Assert.Equal($$"""{"onyx_audit_trail":"redis://{{Redis.ConnectionString}}/0 onyx:{audit}"}""", lines[0]);
                Assert.Equal(5, (await AuditFiles.ReadRecordsAsync(file)).Count);
                Assert.DoesNotContain(TestKeys.MasterKey, await File.ReadAllTextAsync(file), StringComparison.Ordinal);
                // As if the answers to the first three writes had been lost: they are in Redis and in the file too.
                await File.AppendAllLinesAsync(file, written.Select(e => e["record"].ToString()));
                Redis = await RedisServerProcess.StartAsync(Deadline, port, _redisData);
            }

            var second = await StartReplicaAsync(new() { [GatewayHost.SpillDirectoryKey] = spill });
            var replayed = await second.Logs.WaitForAsync(r => r.EventId == 8003, Deadline);
            Assert.Equal(5, replayed["Replayed"]);
            Assert.Equal(3, replayed["Duplicates"]);
            var records = (await WaitForEntriesAsync(8)).Select(Record).ToList();
            Assert.Equal(8, records.Select(r => (string)r["audit_id"]!).Distinct().Count());
            // The replayed file is gone, and the new gateway, its Redis answering, has written none.
            Assert.Empty(Directory.GetFiles(spill));
            await AssertStaysAsync(8);
        }
    }

    [Fact]
    public async Task AGracefulStopWritesTheRecordsStillQueued()
    {
        const int Total = 12;
        var gateway = await StartReplicaAsync(new() { ["Onyx:Audit:BatchSize"] = "4" });
        // Redis holds every write until the gateway is stopping: the writer's first batch waits in it, the rest wait
        // in the queue. (A pause for a fixed time raced the stop: on a busy machine it could outlast the 2 s the stop
        // gives Redis, and the records then went to the spill file, as they should, instead of to Redis.)
        await using var admin = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString + ",allowAdmin=true");
        await admin.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "30000", "WRITE");
        using (var client = gateway.CreateClient(TestKeys.MasterKey))
        {
            for (var i = 0; i < Total; i++)
            {
                using var ok = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
                Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            }
            await using var check = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
            Assert.True(await check.GetDatabase().StreamLengthAsync(StreamKey) < Total);
        }
        var stopping = gateway.DisposeAsync().AsTask();
        var flushing = await gateway.Logs.WaitForAsync(r => r.EventId == 8010, Deadline);
        Assert.True((int)flushing["Count"]! > 0);
        await admin.GetDatabase().ExecuteAsync("CLIENT", "UNPAUSE");
        await stopping;

        var records = (await ReadAllAsync()).Select(Record).ToList();
        var events = string.Join("\n", gateway.Logs.Records.Where(r => r.Category.Contains("Audit", StringComparison.Ordinal)).Select(r => r.Message));
        Assert.True(Total == records.Count, $"{records.Count} of {Total} records in Redis; the writer logged:\n{events}");
        Assert.Equal(Total, records.Select(r => (string)r["audit_id"]!).Distinct().Count());
        var flushed = gateway.Logs.Records.Single(r => r.EventId == 8008);
        Assert.Equal(0L, flushed["PendingBytes"]);
    }

    [Fact]
    public async Task AFullQueueSpillsToTheFileInsteadOfDroppingAndAllIsReplayed()
    {
        const int Total = 8;
        var gateway = await StartReplicaAsync(new() { ["Onyx:Audit:QueueCapacity"] = "1", ["Onyx:Audit:BatchSize"] = "1" });
        using var client = gateway.CreateClient(TestKeys.MasterKey);
        // Redis holds writes for two seconds: the writer waits on its first record, the queue's one place fills, and
        // the requests after it put their records in the spill file themselves.
        await using var admin = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString + ",allowAdmin=true");
        await admin.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "2000", "WRITE");
        for (var i = 0; i < Total; i++)
        {
            using var ok = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        Assert.Single(gateway.Logs.Records, r => r.EventId == 8005);

        var records = (await WaitForEntriesAsync(Total)).Select(Record).ToList();
        Assert.Equal(Total, records.Select(r => (string)r["audit_id"]!).Distinct().Count());
        await gateway.Logs.WaitForAsync(r => r.EventId == 8003, Deadline);
        await AssertStaysAsync(Total);
    }

    [Fact]
    public async Task TheMasterKeyPagesThroughTheTrailNewestFirstFilteredByUserAndTime()
    {
        var gateway = await StartReplicaAsync();
        var alice = await TestKeys.GenerateAsync(gateway, """{"user_id":"alice"}""");
        var bob = await TestKeys.GenerateAsync(gateway, """{"user_id":"bob"}""");
        var sent = new List<(string User, string RequestId)>();
        foreach (var (user, key) in new[] { ("alice", alice), ("bob", bob), ("alice", alice), ("alice", alice), ("bob", bob), ("alice", alice), ("alice", alice) })
        {
            using var client = gateway.CreateClient(key);
            using var ok = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            sent.Add((user, OpenAiResponses.Header(ok, "x-request-id")!));
        }
        await WaitForEntriesAsync(sent.Count);
        using var admin = gateway.CreateClient(TestKeys.MasterKey);

        // Alice's five records, two per page, newest first.
        var pages = new List<JsonNode>();
        string? cursor = null;
        do
        {
            var page = await GetJsonAsync(admin, "/audit?user=alice&limit=2" + (cursor is null ? "" : "&cursor=" + cursor));
            pages.Add(page);
            cursor = (string?)page["next_cursor"];
            Assert.Equal(cursor is not null, (bool)page["has_more"]!);
        }
        while (cursor is not null);
        Assert.Equal([2, 2, 1], pages.Select(p => p["data"]!.AsArray().Count));
        var expected = sent.Where(s => s.User == "alice").Select(s => s.RequestId).Reverse();
        Assert.Equal(expected, pages.SelectMany(p => p["data"]!.AsArray().Select(r => (string)r!["request_id"]!)));
        Assert.Equal("list", (string)pages[0]["object"]!);

        // Time bounds: everything since the first record's time; nothing until before it.
        var all = await GetJsonAsync(admin, "/audit");
        var times = all["data"]!.AsArray().Select(r => DateTimeOffset.Parse((string)r!["timestamp"]!, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(sent.Count, times.Count);
        Assert.Equal(times.OrderDescending(), times);
        var oldest = times[^1];
        var third = times[^3];
        Assert.Equal(sent.Count - 2, (await GetJsonAsync(admin, $"/audit?since={Uri.EscapeDataString(third.ToString("O"))}"))["data"]!.AsArray().Count);
        Assert.Empty((await GetJsonAsync(admin, $"/audit?until={oldest.AddMilliseconds(-1).ToUnixTimeMilliseconds() / 1000.0:0.000}"))["data"]!.AsArray());
        Assert.Equal(2, (await GetJsonAsync(admin, $"/audit?user=bob&since={oldest.ToUnixTimeSeconds()}"))["data"]!.AsArray().Count);

        // Only the master key reads it.
        using var anonymous = gateway.CreateClient();
        using (var none = await anonymous.GetAsync("/audit"))
        {
            Assert.Equal("missing_api_key", (string)(await OpenAiResponses.ErrorOf(none, HttpStatusCode.Unauthorized))["code"]!);
        }
        using var aliceClient = gateway.CreateClient(alice);
        using (var forbidden = await aliceClient.GetAsync("/audit"))
        {
            Assert.Equal("master_key_required", (string)(await OpenAiResponses.ErrorOf(forbidden, HttpStatusCode.Forbidden))["code"]!);
        }
    }

    [Theory]
    [InlineData("limit=0", "limit")]
    [InlineData("limit=1001", "limit")]
    [InlineData("limit=ten", "limit")]
    [InlineData("since=yesterday", "since")]
    [InlineData("until=2026-13-45", "until")]
    [InlineData("since=2026-11-27T00:00:00Z&until=2026-11-26T00:00:00Z", "since")]
    [InlineData("cursor=abc", "cursor")]
    [InlineData("user=", "user")]
    public async Task BadParametersGetAnOpenAiShaped400(string query, string param)
    {
        var gateway = await StartReplicaAsync();
        using var admin = gateway.CreateClient(TestKeys.MasterKey);
        using var response = await admin.GetAsync("/audit?" + query);
        var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.BadRequest);
        Assert.Equal(param, (string)error["param"]!);
        Assert.Equal("invalid_request_error", (string)error["type"]!);
    }

    public void Dispose()
    {
        // After the base class has stopped Redis (xunit disposes IAsyncLifetime first).
        foreach (var directory in _directories.Append(_redisData))
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static JsonNode Record(StreamEntry entry) => JsonNode.Parse((string)entry["record"]!)!;

    /// <summary>The attempts with their timings replaced by X, to compare the rest exactly.</summary>
    private static string Normalize(JsonNode attempts) =>
        System.Text.RegularExpressions.Regex.Replace(attempts.ToJsonString(), "\"elapsed_ms\":[0-9.]+", "\"elapsed_ms\":X");

    private async Task<StreamEntry[]> ReadAllAsync()
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        return await redis.GetDatabase().StreamRangeAsync(StreamKey);
    }

    /// <summary>The stream's entries once it holds <paramref name="count"/> (read again on each write to Redis); more fails at once.</summary>
    private async Task<StreamEntry[]> WaitForEntriesAsync(int count)
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        return await RedisWrites.WaitForAsync(Redis.ConnectionString, async () =>
        {
            var entries = await redis.GetDatabase().StreamRangeAsync(StreamKey);
            Assert.True(entries.Length <= count, $"{entries.Length} audit records, expected {count}");
            return entries;
        }, entries => entries.Length == count, Deadline, $"{count} audit records", entries => $"{entries.Length} records");
    }

    /// <summary>The writer has nothing left to replay, and the stream still holds exactly <paramref name="count"/>.</summary>
    private async Task AssertStaysAsync(int count)
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        Assert.Equal(count, await redis.GetDatabase().StreamLengthAsync(StreamKey));
        Assert.Equal(count, await redis.GetDatabase().SortedSetLengthAsync(StreamKey + ":ids"));
    }

    private static async Task<JsonNode> GetJsonAsync(HttpClient client, string path)
    {
        using var response = await client.GetAsync(path);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        return JsonNode.Parse(body)!;
    }
}
