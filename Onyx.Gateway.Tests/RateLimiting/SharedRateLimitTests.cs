using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Onyx.Gateway.Tests.TestHost;
using StackExchange.Redis;

namespace Onyx.Gateway.Tests.RateLimiting;

/// <summary>
/// Limits and keys shared through a real redis-server by gateways in this process acting as replicas — and what
/// happens when that Redis stops, stalls and comes back.
/// </summary>
public sealed class SharedRateLimitTests : ReplicasOnOneRedis
{
    protected override Dictionary<string, string?> ReplicaSettings => new() { ["LITELLM_MASTER_KEY"] = TestKeys.MasterKey };

    [Fact]
    public async Task TwoReplicasTogetherAdmitExactlyTheLimit()
    {
        // Exactness is tested with every admission decided in Redis (the default bound: AStalledRedis…).
        var exact = DecidedInRedis(new() { ["litellm_settings:rate_limit:rpm"] = "20" });
        var a = await StartReplicaAsync(exact);
        var b = await StartReplicaAsync(exact);
        // Made on one replica, used on both: keys live in Redis.
        var key = await TestKeys.GenerateAsync(a, """{"user_id":"shared-user"}""");
        using var onA = a.CreateClient(key);
        using var onB = b.CreateClient(key);

        // One request through each replica first, so both have admitted some; then 38 at once, alternating.
        foreach (var client in new[] { onA, onB })
        {
            using var first = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }
        var responses = await Task.WhenAll(Enumerable.Range(0, 38).Select(async i =>
        {
            using var response = await (i % 2 == 0 ? onA : onB).PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
            return (response.StatusCode, RetryAfterMs: OpenAiResponses.Header(response, "retry-after-ms"));
        }));

        Assert.Equal(18, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
        Assert.Equal(20, responses.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests));
        Assert.All(responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests), r => Assert.InRange(long.Parse(r.RetryAfterMs!), 1, 60_000));
        Assert.Equal(20, a.Primary.Calls + b.Primary.Calls);

        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        var admitted = await redis.GetDatabase().SortedSetRangeByRankAsync("onyx:rl:{shared-user}:req");
        Assert.Equal(20, admitted.Length);
        // Each entry names the replica that admitted it: both did.
        Assert.Equal(2, admitted.Select(m => m.ToString().Split(':')[0]).Distinct().Count());
    }

    [Fact]
    public async Task ARefusedCallerGetsInExactlyWhenRetryAfterSays()
    {
        var gateway = await StartReplicaAsync(DecidedInRedis(new()
        {
            ["litellm_settings:rate_limit:rpm"] = "2",
            ["Onyx:RateLimits:Window"] = "00:00:02",
        }));
        using var client = gateway.CreateClient(TestKeys.MasterKey);
        for (var i = 0; i < 2; i++)
        {
            using var ok = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        using var refused = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        var refusedAt = DateTimeOffset.UtcNow;
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        var retryAfter = TimeSpan.FromMilliseconds(long.Parse(OpenAiResponses.Header(refused, "retry-after-ms")!));
        Assert.InRange(retryAfter, TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(2));
        Assert.Equal("2", OpenAiResponses.Header(refused, "Retry-After"));

        // The window runs on the Redis server's clock, which no fake can drive: a client honouring the
        // Retry-After it was given is what is tested here.
        await RealClock.WaitUntilAsync(refusedAt + retryAfter);
        using var admitted = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal(HttpStatusCode.OK, admitted.StatusCode);
    }

    [Fact]
    public async Task CountsAStreamedAnswersTokensInRedis()
    {
        // Exact counts need every admission decided in Redis.
        var gateway = await StartReplicaAsync(DecidedInRedis(new() { ["litellm_settings:rate_limit:tpm"] = "20" }));
        using var client = gateway.CreateClient(TestKeys.MasterKey);
        var perCall = 12 + gateway.Primary.Tokens.Count;

        using var streamed = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        Assert.Equal("[DONE]", Sse.Events(await streamed.Content.ReadAsStringAsync())[^1]);

        using var second = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal((20 - perCall).ToString(System.Globalization.CultureInfo.InvariantCulture), OpenAiResponses.Header(second, "x-ratelimit-remaining-tokens"));

        using var refused = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal("tokens", (string?)(await OpenAiResponses.ErrorOf(refused, HttpStatusCode.TooManyRequests))["type"]);

        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        Assert.Equal(2 * perCall, (long)await redis.GetDatabase().StringGetAsync("onyx:rl:{master}:tokens-total"));
    }

    [Fact]
    public async Task OneRecordScriptCountsManyFinishedCallsExactly()
    {
        // Calls that finish while a record is being written go to Redis together, in one script: each call's
        // tokens are counted once, for each of its subjects, and each frees its parallel slot.
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        var store = new Onyx.Gateway.RateLimiting.RedisUsageStore(redis, Microsoft.Extensions.Options.Options.Create(new Onyx.Gateway.Configuration.OnyxOptions()));
        var user = Onyx.Gateway.RateLimiting.LimitSubject.User("batch-user", rpm: 100, tpm: 1000, maxParallel: 5);
        var subjects = new[] { user, user.EndUser("alice", 100, 1000) };
        var bob = new[] { user, user.EndUser("bob", 100, 1000) };
        var members = new[] { "r:1", "r:2", "r:3" };
        foreach (var member in members)
        {
            Assert.True((await store.AdmitAsync(subjects, member, CancellationToken.None)).Admitted);
        }
        Assert.True((await store.AdmitAsync(bob, "r:4", CancellationToken.None)).Admitted);
        var database = redis.GetDatabase();
        Assert.Equal(4, await database.SortedSetLengthAsync(user.Key + ":par"));

        await store.RecordAsync([new(subjects, "r:1", 5), new(subjects, "r:2", 0), new(bob, "r:4", 4), new(subjects, "r:3", 7)], CancellationToken.None);

        // Each entry: the running total after it (padded), its own tokens, its request; in the order the calls came.
        async Task AssertTokens(Onyx.Gateway.RateLimiting.LimitSubject subject, long total, string[] entries)
        {
            Assert.Equal(total, (long)await database.StringGetAsync(subject.Key + ":tokens-total"));
            Assert.Equal(entries, (await database.SortedSetRangeByRankAsync(subject.Key + ":tokens")).Select(m => m.ToString()));
        }
        await AssertTokens(user, 16, ["0000000000000005:5:r:1", "0000000000000009:4:r:4", "0000000000000016:7:r:3"]);
        await AssertTokens(subjects[1], 12, ["0000000000000005:5:r:1", "0000000000000012:7:r:3"]);
        await AssertTokens(bob[1], 4, ["0000000000000004:4:r:4"]);
        Assert.Equal(0, await database.SortedSetLengthAsync(user.Key + ":par"));
        var next = await store.AdmitAsync(subjects, "r:5", CancellationToken.None);
        Assert.Equal(16, next.Usage[0].Tokens);
        Assert.Equal(12, next.Usage[1].Tokens);
    }

    [Fact]
    public async Task AdmissionsThatComeTogetherGoInFewScriptsAndAreCountedExactly()
    {
        // Admissions that arrive while one is in flight go together, one script per user: each is still checked and
        // counted in turn, as if it had come alone. Two users, each with an end user capped below the user's limits.
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString + ",allowAdmin=true");
        var store = new Onyx.Gateway.RateLimiting.RedisUsageStore(redis, Microsoft.Extensions.Options.Options.Create(new Onyx.Gateway.Configuration.OnyxOptions()));
        var server = redis.GetServer(redis.GetEndPoints()[0]);
        await server.ExecuteAsync("CONFIG", "RESETSTAT");
        var ann = Onyx.Gateway.RateLimiting.LimitSubject.User("together-ann", rpm: 25, tpm: 1000, maxParallel: 0);
        var ben = Onyx.Gateway.RateLimiting.LimitSubject.User("together-ben", rpm: 1000, tpm: 1000, maxParallel: 12);
        var calls = new List<(string User, Onyx.Gateway.RateLimiting.LimitSubject[] Subjects, Task<Onyx.Gateway.RateLimiting.Admission> Admission)>();
        for (var i = 0; i < 40; i++)
        {
            Onyx.Gateway.RateLimiting.LimitSubject[] annSubjects = [ann, ann.EndUser(i % 2 == 0 ? "a1" : "a2", 10, 0)];
            calls.Add(("ann", annSubjects, store.AdmitAsync(annSubjects, $"ann:{i}", CancellationToken.None)));
            Onyx.Gateway.RateLimiting.LimitSubject[] benSubjects = [ben];
            calls.Add(("ben", benSubjects, store.AdmitAsync(benSubjects, $"ben:{i}", CancellationToken.None)));
        }
        await Task.WhenAll(calls.Select(c => c.Admission));

        // Ann: each end user gets 10 (its own limit), 20 in all, under her 25; the rest are refused by the end user's limit.
        var annCalls = calls.Where(c => c.User == "ann").Select(c => c.Admission.Result).ToList();
        Assert.Equal(20, annCalls.Count(a => a.Admitted));
        Assert.Equal(Enumerable.Range(1, 20).Select(n => (long)n), annCalls.Where(a => a.Admitted).Select(a => a.Usage[0].Requests).Order());
        Assert.All(annCalls.Where(a => !a.Admitted), a =>
        {
            Assert.Equal(1, a.RefusedSubject);
            Assert.Equal(Onyx.Gateway.RateLimiting.LimitKind.Requests, a.RefusedLimit);
            Assert.Equal(10, a.Usage[1].Requests);
            Assert.InRange(a.RetryAfter, TimeSpan.FromSeconds(50), TimeSpan.FromSeconds(60));
        });
        // Ben: 12 in flight at most, in the order the admissions came.
        var benCalls = calls.Where(c => c.User == "ben").Select(c => c.Admission.Result).ToList();
        Assert.All(benCalls.Take(12), a => Assert.True(a.Admitted));
        Assert.Equal(Enumerable.Range(1, 12).Select(n => (long)n), benCalls.Take(12).Select(a => a.Usage[0].Requests));
        Assert.All(benCalls.Skip(12), a =>
        {
            Assert.False(a.Admitted);
            Assert.Equal(Onyx.Gateway.RateLimiting.LimitKind.Parallel, a.RefusedLimit);
            Assert.Equal(12, a.Usage[0].Requests);
        });

        var database = redis.GetDatabase();
        Assert.Equal(20, await database.SortedSetLengthAsync(ann.Key + ":req"));
        Assert.Equal(10, await database.SortedSetLengthAsync(ann.EndUser("a1", 10, 0).Key + ":req"));
        Assert.Equal(12, await database.SortedSetLengthAsync(ben.Key + ":req"));
        Assert.Equal(12, await database.SortedSetLengthAsync(ben.Key + ":par"));
        Assert.InRange((await database.KeyTimeToLiveAsync(ann.Key + ":req"))!.Value, TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(60));
        Assert.InRange((await database.KeyTimeToLiveAsync(ben.Key + ":par"))!.Value, TimeSpan.FromMilliseconds(1), new Onyx.Gateway.Configuration.OnyxOptions().RateLimits.ParallelLease);

        // 80 admissions; alone, each would have taken a script of its own.
        var stats = (string)(await server.ExecuteAsync("INFO", "commandstats"))!;
        var scripts = System.Text.RegularExpressions.Regex.Matches(stats, @"cmdstat_eval(?:sha)?:calls=(\d+)").Sum(m => long.Parse(m.Groups[1].Value));
        Assert.InRange(scripts, 2, 40);
    }

    [Fact]
    public async Task AnAdmissionThatWaitedPastTheTimeoutForItsTurnIsNotSent()
    {
        // The limiter decides in memory a request whose answer takes longer than RedisTimeout (50 ms). Admissions
        // that queued behind a script Redis held up are past it when their turn comes: sent then, Redis would count
        // requests their replica has already counted in memory.
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        var store = new Onyx.Gateway.RateLimiting.RedisUsageStore(redis, Microsoft.Extensions.Options.Options.Create(new Onyx.Gateway.Configuration.OnyxOptions()));
        var user = Onyx.Gateway.RateLimiting.LimitSubject.User("queued-user", rpm: 100, tpm: 1000, maxParallel: 0);
        // Redis answers no one for 500 ms (this connection is closed only afterwards: closing waits out the pause).
        await using var admin = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString + ",allowAdmin=true");
        await admin.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "500", "ALL");

        var first = store.AdmitAsync([user], "r:1", CancellationToken.None);
        var queued = new[] { store.AdmitAsync([user], "r:2", CancellationToken.None), store.AdmitAsync([user], "r:3", CancellationToken.None) };

        Assert.True((await first).Admitted);
        foreach (var admission in queued)
        {
            await Assert.ThrowsAsync<TimeoutException>(() => admission);
        }
        Assert.Equal(["r:1"], (await redis.GetDatabase().SortedSetRangeByRankAsync(user.Key + ":req")).Select(m => m.ToString()));
        // The next admission goes as usual.
        Assert.Equal(2, (await store.AdmitAsync([user], "r:4", CancellationToken.None)).Usage[0].Requests);
    }

    [Fact]
    public async Task AQueuedAdmissionWhoseClientHasGoneIsNotSent()
    {
        // Counted after its client has gone, an admission would hold a parallel slot until the lease ends.
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        var options = new Onyx.Gateway.Configuration.OnyxOptions();
        options.RateLimits.RedisTimeout = TimeSpan.FromSeconds(30);
        var store = new Onyx.Gateway.RateLimiting.RedisUsageStore(redis, Microsoft.Extensions.Options.Options.Create(options));
        var user = Onyx.Gateway.RateLimiting.LimitSubject.User("gone-user", rpm: 100, tpm: 1000, maxParallel: 5);
        await using var admin = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString + ",allowAdmin=true");
        await admin.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "300", "ALL");

        var first = store.AdmitAsync([user], "r:1", CancellationToken.None);
        using var gone = new CancellationTokenSource();
        var abandoned = store.AdmitAsync([user], "r:2", gone.Token);
        var waiting = store.AdmitAsync([user], "r:3", CancellationToken.None);
        gone.Cancel();

        Assert.Equal(1, (await first).Usage[0].Requests);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);
        Assert.Equal(2, (await waiting).Usage[0].Requests);
        var database = redis.GetDatabase();
        Assert.Equal(["r:1", "r:3"], (await database.SortedSetRangeByRankAsync(user.Key + ":req")).Select(m => m.ToString()));
        Assert.Equal(["r:1", "r:3"], (await database.SortedSetRangeByRankAsync(user.Key + ":par")).Select(m => m.ToString()));
    }

    [Fact]
    public async Task ScriptsFlushedFromRedisAreLoadedAgain()
    {
        // A Redis that lost the scripts (restarted, SCRIPT FLUSH, a new node) answers EVALSHA with NOSCRIPT: they are loaded again.
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString + ",allowAdmin=true");
        var store = new Onyx.Gateway.RateLimiting.RedisUsageStore(redis, Microsoft.Extensions.Options.Options.Create(new Onyx.Gateway.Configuration.OnyxOptions()));
        var user = Onyx.Gateway.RateLimiting.LimitSubject.User("flushed-user", rpm: 100, tpm: 1000, maxParallel: 0);
        var server = redis.GetServer(redis.GetEndPoints()[0]);

        await server.ScriptFlushAsync();
        Assert.Equal(1, (await store.AdmitAsync([user], "r:1", CancellationToken.None)).Usage[0].Requests);
        await server.ScriptFlushAsync();
        await store.RecordAsync([new([user], "r:1", 30)], CancellationToken.None);
        await server.ScriptFlushAsync();
        var second = await store.AdmitAsync([user], "r:2", CancellationToken.None);
        Assert.Equal(2, second.Usage[0].Requests);
        Assert.Equal(30, second.Usage[0].Tokens);
    }

    [Fact]
    public async Task ExpiredEntriesAreSkippedByAdmissionsAndDroppedABoundedNumberAtATimeByRecords()
    {
        // A heavy user's busy minute, long gone: thousands of entries older than the window. No script may drop them
        // all at once (that held Redis for a third of a second at 240 000 entries): admissions count only what is in
        // the window and drop nothing; each record script drops at most a bounded number per set.
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        var store = new Onyx.Gateway.RateLimiting.RedisUsageStore(redis, Microsoft.Extensions.Options.Options.Create(new Onyx.Gateway.Configuration.OnyxOptions()));
        var drop = Onyx.Gateway.RateLimiting.RedisUsageStore.MaxExpiredDroppedPerRecord;
        Onyx.Gateway.RateLimiting.LimitSubject User(long rpm, long tpm) => Onyx.Gateway.RateLimiting.LimitSubject.User("heavy-user", rpm, tpm, maxParallel: 0);
        var key = User(0, 0).Key;
        var database = redis.GetDatabase();
        var expired = 4 * drop + 500;
        await database.SortedSetAddAsync(key + ":req", [.. Enumerable.Range(0, expired).Select(i => new SortedSetEntry($"old:{i}", 1 + i))]);
        await database.SortedSetAddAsync(key + ":tokens", [.. Enumerable.Range(0, expired).Select(i => new SortedSetEntry($"{(i + 1) * 10L:D16}:10:old:{i}", 1 + i))]);
        await database.StringSetAsync(key + ":tokens-total", expired * 10L);
        async Task AssertLeft(int requests, int tokenEntries)
        {
            Assert.Equal(requests, await database.SortedSetLengthAsync(key + ":req"));
            Assert.Equal(tokenEntries, await database.SortedSetLengthAsync(key + ":tokens"));
        }

        var first = await store.AdmitAsync([User(1_000_000, 1_000_000)], "new:1", CancellationToken.None);
        Assert.True(first.Admitted);
        Assert.Equal(1, first.Usage[0].Requests);
        Assert.Equal(0, first.Usage[0].Tokens);
        await AssertLeft(expired + 1, expired);
        await store.RecordAsync([new([User(0, 0)], "new:1", 25)], CancellationToken.None);
        await AssertLeft(expired + 1 - drop, expired + 1 - drop);

        // Refused on requests while expired entries are still ahead of the window's first: the retry is that entry's.
        var onRequests = await store.AdmitAsync([User(1, 1_000_000)], "new:2", CancellationToken.None);
        Assert.False(onRequests.Admitted);
        Assert.Equal(Onyx.Gateway.RateLimiting.LimitKind.Requests, onRequests.RefusedLimit);
        Assert.InRange(onRequests.RetryAfter, TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(60));
        Assert.Equal(1, onRequests.Usage[0].Requests);

        // Refused on tokens likewise: 25 counted, not the thousands still waiting to be dropped.
        var onTokens = await store.AdmitAsync([User(1_000_000, 20)], "new:3", CancellationToken.None);
        Assert.False(onTokens.Admitted);
        Assert.Equal(Onyx.Gateway.RateLimiting.LimitKind.Tokens, onTokens.RefusedLimit);
        Assert.Equal(25, onTokens.Usage[0].Tokens);
        Assert.InRange(onTokens.RetryAfter, TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(60));
        await AssertLeft(expired + 1 - drop, expired + 1 - drop);

        var next = await store.AdmitAsync([User(1_000_000, 1_000_000)], "new:4", CancellationToken.None);
        Assert.True(next.Admitted);
        Assert.Equal(2, next.Usage[0].Requests);
        Assert.Equal(25, next.Usage[0].Tokens);
        await store.RecordAsync([new([User(0, 0)], "new:4", 10)], CancellationToken.None);
        await AssertLeft(expired + 2 - 2 * drop, expired + 2 - 2 * drop);
        var last = await store.AdmitAsync([User(1_000_000, 1_000_000)], "new:5", CancellationToken.None);
        Assert.Equal(3, last.Usage[0].Requests);
        Assert.Equal(35, last.Usage[0].Tokens);
        for (var i = 0; i < 3; i++)
        {
            await store.RecordAsync([new([User(0, 0)], "new:5", 0)], CancellationToken.None);
        }
        // Every expired entry gone by now: 4 × drop + 500 in five record scripts; the window's own entries kept.
        await AssertLeft(3, 2);
        Assert.Equal(35, (await store.AdmitAsync([User(1_000_000, 1_000_000)], "new:6", CancellationToken.None)).Usage[0].Tokens);
    }

    [Fact]
    public async Task KeepsServingWhileRedisIsDownAndSharesAgainWhenItIsBack()
    {
        var gateway = await StartReplicaAsync(new() { ["Onyx:Redis:PingInterval"] = "00:00:00.200" });
        using var client = gateway.CreateClient(TestKeys.MasterKey);
        using (var before = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            Assert.Equal("99", OpenAiResponses.Header(before, "x-ratelimit-remaining-requests"));
        }

        var port = Redis.Port;
        await Redis.DisposeAsync();
        for (var i = 0; i < 5; i++)
        {
            using var degraded = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
            Assert.Equal(HttpStatusCode.OK, degraded.StatusCode);
            // Counted in this replica's memory now, from zero.
            Assert.Equal((99 - i).ToString(System.Globalization.CultureInfo.InvariantCulture), OpenAiResponses.Header(degraded, "x-ratelimit-remaining-requests"));
        }
        Assert.Single(gateway.Logs.Records, r => r.EventId == 5002);
        var health = await HealthAsync(client);
        Assert.Equal("Degraded", (string?)health["checks"]!["rate-limits"]!["status"]);

        Redis = await RedisServerProcess.StartAsync(TimeSpan.FromSeconds(20), port);
        await gateway.Logs.WaitForAsync(r => r.EventId == 5004, TimeSpan.FromSeconds(20));

        using (var shared = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            if (shared.StatusCode != HttpStatusCode.OK)
            {
                // Say why: the answer's error and what the gateway logged at warning or above.
                var logged = string.Join("\n", gateway.Logs.Records.Where(r => r.Level >= Microsoft.Extensions.Logging.LogLevel.Warning)
                    .Select(r => $"{r.EventId} {r.Category}: {r.Message} {r.Exception?.Message}"));
                Assert.Fail($"{(int)shared.StatusCode}: {await shared.Content.ReadAsStringAsync()}\n{logged}");
            }
            // The restarted Redis is empty: this is its first request.
            Assert.Equal("99", OpenAiResponses.Header(shared, "x-ratelimit-remaining-requests"));
        }
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        Assert.Equal(1, await redis.GetDatabase().SortedSetLengthAsync("onyx:rl:{master}:req"));
        health = await HealthAsync(client);
        Assert.Equal("Healthy", (string?)health["checks"]!["rate-limits"]!["status"]);
    }

    [Fact]
    public async Task FailClosedRefusesWhileRedisIsDown()
    {
        var gateway = await StartReplicaAsync(new() { ["Onyx:RateLimits:FailClosed"] = "true" });
        using var client = gateway.CreateClient(TestKeys.MasterKey);
        await Redis.DisposeAsync();

        using var refused = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));

        Assert.Equal("rate_limiter_unavailable", (string?)(await OpenAiResponses.ErrorOf(refused, HttpStatusCode.ServiceUnavailable))["code"]);
        Assert.Equal("1", OpenAiResponses.Header(refused, "Retry-After"));
        Assert.Equal(0, gateway.Primary.Calls);
        Assert.Single(gateway.Logs.Records, r => r.EventId == 5003);
    }

    [Fact]
    public async Task AStalledRedisDoesNotHoldRequests()
    {
        var gateway = await StartReplicaAsync();
        using var client = gateway.CreateClient(TestKeys.MasterKey);
        (await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()))).Dispose();

        // Redis stops answering anyone for 3 s (this connection is closed only afterwards: closing waits out the pause).
        await using var admin = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString + ",allowAdmin=true");
        await admin.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "3000", "ALL");
        // Three slow answers in a row: each request is decided in memory after 50 ms, and the third stops the
        // replica asking Redis until it answers again.
        for (var i = 0; i < 3; i++)
        {
            var clock = Stopwatch.StartNew();
            using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
            var elapsed = clock.Elapsed;

            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            // 1 s leaves room for a busy machine and is still far below the 3 s pause.
            Assert.True(elapsed < TimeSpan.FromSeconds(1), $"answered after {elapsed.TotalMilliseconds:0} ms");
        }
        Assert.True(gateway.Logs.Records.Any(r => r.EventId == 5002 && ((string?)r["Error"])!.Contains("timed out", StringComparison.OrdinalIgnoreCase)),
            string.Join("\n", gateway.Logs.Records.Where(r => r.EventId >= 5000).Select(r => r.Message)));
    }

    [Fact]
    public async Task KeysLiveInRedisOnlyAsHashesAndADeletionReachesEveryReplica()
    {
        var a = await StartReplicaAsync();
        var b = await StartReplicaAsync();
        var key = await TestKeys.GenerateAsync(a, """{"user_id":"hashed-user"}""");
        using var onB = b.CreateClient(key);
        using (var ok = await onB.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody())))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString + ",allowAdmin=true");
        var server = redis.GetServer(redis.GetEndPoints()[0]);
        var database = redis.GetDatabase();
        var everything = new List<string>();
        await foreach (var name in server.KeysAsync(pattern: "*"))
        {
            everything.Add(name.ToString());
            if (await database.KeyTypeAsync(name) == RedisType.String)
            {
                everything.Add((await database.StringGetAsync(name)).ToString());
            }
        }
        Assert.Contains("onyx:key:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key))), everything);
        Assert.DoesNotContain(everything, text => text.Contains(key[3..], StringComparison.Ordinal));

        using (var admin = a.CreateClient(TestKeys.MasterKey))
        {
            using var deleted = await admin.PostAsync("/key/delete", GatewayHost.Json($$"""{"keys":["{{key}}"]}"""));
            Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
        }
        // Replica b had the key cached; the deletion notice reaches it through Redis pub/sub.
        await b.Logs.WaitForAsync(r => r.EventId == 6005, TimeSpan.FromSeconds(10));
        using var refused = await onB.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
    }

    /// <summary>The health report; 200 whether Redis is up or down (a Redis outage is Degraded, never 503).</summary>
    private static async Task<JsonNode> HealthAsync(HttpClient client)
    {
        using var response = await client.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
    }
}
