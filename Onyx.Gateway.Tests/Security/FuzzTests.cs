using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Onyx.Gateway.Tests.Security;

/// <summary>
/// Thousands of mutated and random bodies (deterministic: each one from <c>Random(Seed + i)</c>, so a failure names
/// the index that reproduces it) against one in-process gateway: never a 5xx, always an OpenAI-shaped error, an
/// upstream call only for a request that was answered, bounded memory, and a healthy gateway afterwards.
/// It runs alone: its memory bound reads the test process's managed heap, which other tests running beside it
/// would grow (one such run failed the bound with 33.6 MB).
/// </summary>
/// <remarks>
/// The leak check reads the small-object heap only. Per-request state (bodies, nodes, strings, log scopes) would
/// pile up there, since almost every request is far below the 85 000-byte large-object threshold. The large-object
/// heap is dominated by <c>ArrayPool&lt;byte&gt;.Shared</c>'s big buffers (the JSON reader and writer rent up to
/// 1 MB for the huge bodies, on the test's side and the gateway's), which the pool keeps per core and per thread:
/// bounded, but it still filled during the second half of runs (gcdump of one: the 1 MB arrays went from 15 to 18,
/// nearly all of that half's growth; a CI run failed a whole-heap bound of 24 MB with 25.9 MB that way).
/// </remarks>
[Collection(FuzzCollection.Name)]
public sealed class FuzzTests(SecuredGatewayFixture fixture, ITestOutputHelper output) : IClassFixture<SecuredGatewayFixture>
{
    private const int Seed = 20261126;
    private const int Count = 3000;

    private static readonly string[] ValidBodies =
    [
        """{"model":"manus-primary","messages":[{"role":"user","content":"Say hello"}]}""",
        """{"model":"manus-primary","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"temperature":0.3,"max_tokens":100}""",
        """{"model":"manus-fallback","messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}],"top_p":0.9}""",
        """{"model":"manus-primary","messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"sunny"}],"tools":[{"type":"function","function":{"name":"w","parameters":{"type":"object"}}}],"tool_choice":"auto","seed":3}""",
        """{"model":"manus-fallback","stream":true,"messages":[{"role":"developer","content":"Answer in French."},{"role":"user","content":"Bonjour"}],"stop":["\n\n","END"],"presence_penalty":0.5,"user":"u-1"}""",
    ];

    private static readonly string[] Fields =
    [
        "model", "messages", "stream", "stream_options", "temperature", "top_p", "n", "stop", "max_tokens", "max_completion_tokens",
        "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "seed", "response_format", "tools",
        "tool_choice", "user", "api_base", "api_key", "extra_headers", "metadata", "unknown_field",
    ];

    [Fact]
    public async Task ThousandsOfHostileBodiesNeverBreakTheGateway()
    {
        fixture.Gateway.Primary.Reset();
        fixture.Gateway.Fallback.Reset();
        using var process = Process.GetCurrentProcess();
        var before = Memory(process);
        var clock = Stopwatch.StartNew();

        using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 8 })
        {
            BaseAddress = fixture.Gateway.BaseAddress,
            Timeout = TimeSpan.FromSeconds(30),
        };
        // Two halves: the first warms the pools (Kestrel's, ArrayPool's), so growth in the second would be a leak.
        // The fakes keep every request they got (huge bodies too): count, then forget them before measuring.
        var outcomes = await RunAsync(client, 0, Count / 2);
        var upstreamCalls = TakeUpstreamCalls();
        var halfway = Memory(process);
        outcomes.AddRange(await RunAsync(client, Count / 2, Count));
        upstreamCalls += TakeUpstreamCalls();
        clock.Stop();
        var after = Memory(process);

        var byStatus = outcomes.GroupBy(o => o.Status).OrderBy(g => g.Key).Select(g => $"{g.Key}: {g.Count()}");
        output.WriteLine($"{Count} bodies in {clock.Elapsed.TotalSeconds:F1} s; statuses {string.Join(", ", byStatus)}");
        output.WriteLine($"log records kept by the test host: {fixture.Gateway.Logs.Records.Count}");
        output.WriteLine($"small-object heap {Mb(before.SmallObjects)} → {Mb(halfway.SmallObjects)} (halfway) → {Mb(after.SmallObjects)} MB; "
            + $"large-object heap {Mb(before.LargeObjects)} → {Mb(halfway.LargeObjects)} → {Mb(after.LargeObjects)} MB; working set {Mb(before.WorkingSet)} → {Mb(after.WorkingSet)} MB");

        Assert.Equal(Count, outcomes.Count);
        var serverErrors = outcomes.Where(o => o.Status >= 500).Select(o => $"#{o.Index} ({o.Kind}) → {o.Status}").ToList();
        Assert.True(serverErrors.Count == 0, "5xx answers (reproduce with Generate(new Random(Seed + index))): " + string.Join("; ", serverErrors.Take(20)));
        var misshapen = outcomes.Where(o => o.Problem is not null).Select(o => $"#{o.Index} ({o.Kind}) → {o.Status}: {o.Problem}").ToList();
        Assert.True(misshapen.Count == 0, "errors not in OpenAI's shape, or no answer: " + string.Join("; ", misshapen.Take(20)));
        // Only requests that were answered reached an upstream.
        var answered = outcomes.Count(o => o.Status is >= 200 and < 300);
        // Every upstream call belongs to an answered request (x-onyx-attempts counts them: a fallback makes two).
        Assert.Equal(outcomes.Sum(o => o.Attempts), upstreamCalls);
        Assert.InRange(answered, 50, Count - 1000);
        // Nothing accumulates per request once the pools are warm, and the whole run stays within a generous bound.
        var smallGrowth = after.SmallObjects - halfway.SmallObjects;
        Assert.True(smallGrowth < 8L * 1024 * 1024, $"small-object heap grew by {Mb(smallGrowth)} MB in the second half");
        Assert.True(after.WorkingSet - before.WorkingSet < 512L * 1024 * 1024, $"working set grew by {Mb(after.WorkingSet - before.WorkingSet)} MB");

        int TakeUpstreamCalls()
        {
            var calls = fixture.UpstreamCalls;
            fixture.Gateway.Primary.Reset();
            fixture.Gateway.Fallback.Reset();
            return calls;
        }

        using var normal = await fixture.Client.PostAsync("/v1/chat/completions", TestHost.GatewayHost.Json(TestHost.GatewayHost.ChatBody()));
        Assert.Equal(System.Net.HttpStatusCode.OK, normal.StatusCode);
        using var health = await fixture.Client.GetAsync("/alive");
        Assert.Equal(System.Net.HttpStatusCode.OK, health.StatusCode);
    }

    private static async Task<List<(int Index, string Kind, int Status, string? Problem, int Attempts)>> RunAsync(HttpClient client, int from, int to)
    {
        var outcomes = new ConcurrentBag<(int Index, string Kind, int Status, string? Problem, int Attempts)>();
        await Parallel.ForEachAsync(Enumerable.Range(from, to - from), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, ct) =>
        {
            var (kind, body, contentType) = Generate(new Random(Seed + i));
            using var content = new ByteArrayContent(body);
            if (contentType is not null)
            {
                // Unchecked, so malformed ones reach the gateway as sent.
                content.Headers.TryAddWithoutValidation("Content-Type", contentType);
            }
            try
            {
                using var response = await client.PostAsync("/v1/chat/completions", content, ct);
                var text = await response.Content.ReadAsStringAsync(ct);
                var status = (int)response.StatusCode;
                outcomes.Add((i, kind, status, status is >= 200 and < 300 ? null : ErrorShapeProblem(text), Attempts(response)));
            }
            catch (HttpRequestException ex)
            {
                outcomes.Add((i, kind, 0, $"no answer: {ex.Message} {ex.InnerException?.Message} (body {body.Length} bytes)", 0));
            }
        });
        return [.. outcomes];
    }

    /// <summary>The upstream calls the gateway says it made for this answer (none for a refusal).</summary>
    private static int Attempts(HttpResponseMessage response) =>
        response.Headers.TryGetValues("x-onyx-attempts", out var values) ? int.Parse(values.Single(), System.Globalization.CultureInfo.InvariantCulture) : 0;

    /// <summary>Live bytes after a full blocking, compacting collection: small-object heap (gen 0–2), large-object heap.</summary>
    private static (long SmallObjects, long LargeObjects, long WorkingSet) Memory(Process process)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        var info = GC.GetGCMemoryInfo(GCKind.FullBlocking);
        long Live(int generation) => info.GenerationInfo[generation].SizeAfterBytes - info.GenerationInfo[generation].FragmentationAfterBytes;
        process.Refresh();
        return (Live(0) + Live(1) + Live(2), Live(3), process.WorkingSet64);
    }

    private static string Mb(long bytes) => (bytes / 1048576.0).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Null when <paramref name="text"/> is <c>{"error":{"message":"…","type":"…",…}}</c>, else what is wrong.</summary>
    private static string? ErrorShapeProblem(string text)
    {
        try
        {
            var error = JsonNode.Parse(text)?["error"];
            return error?["message"] is JsonValue message && message.GetValueKind() == JsonValueKind.String && error["type"] is JsonValue
                && error.AsObject().ContainsKey("param") && error.AsObject().ContainsKey("code")
                ? null
                : "no error object: " + text[..Math.Min(text.Length, 200)];
        }
        catch (JsonException)
        {
            return "not JSON: " + text[..Math.Min(text.Length, 200)];
        }
    }

    /// <summary>One hostile request: what was done to it, its bytes, its Content-Type.</summary>
    internal static (string Kind, byte[] Body, string? ContentType) Generate(Random random)
    {
        const string json = "application/json";
        var valid = ValidBodies[random.Next(ValidBodies.Length)];
        var bytes = Encoding.UTF8.GetBytes(valid);
        switch (random.Next(16))
        {
            case 0:
                return ("valid", bytes, random.Next(2) == 0 ? json : "application/json; charset=utf-8");
            case 1:
                return ("truncated", bytes[..random.Next(bytes.Length)], json);
            case 2:
                for (var k = random.Next(1, 6); k > 0; k--)
                {
                    bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
                }
                return ("bytes flipped", bytes, json);
            case 3:
                var withControls = new List<byte>(bytes);
                for (var k = random.Next(1, 6); k > 0; k--)
                {
                    withControls.Insert(random.Next(withControls.Count), (byte)random.Next(0x20));
                }
                return ("control characters", withControls.ToArray(), json);
            case 4:
                var wrongType = JsonNode.Parse(valid)!.AsObject();
                for (var k = random.Next(1, 4); k > 0; k--)
                {
                    wrongType[Fields[random.Next(Fields.Length)]] = RandomValue(random, depth: 0);
                }
                return ("wrong types", Encoding.UTF8.GetBytes(wrongType.ToJsonString()), json);
            case 5:
                var depth = random.Next(10, 5000);
                var open = random.Next(2) == 0 ? "[" : "{\"a\":";
                var close = open == "[" ? "]" : "}";
                var nested = string.Concat(Enumerable.Repeat(open, depth)) + "1" + string.Concat(Enumerable.Repeat(close, depth));
                return ("deep nesting", Encoding.UTF8.GetBytes(valid.Insert(1, $"\"x\":{nested},")), json);
            case 6:
                var size = random.Next(2) == 0 ? random.Next(10_000, 200_000) : random.Next(200_000, 400_000);
                var huge = JsonNode.Parse(valid)!.AsObject();
                huge["messages"]![0]!["content"] = new string((char)random.Next('a', 'z' + 1), size);
                return ("huge string", Encoding.UTF8.GetBytes(huge.ToJsonString()), json);
            case 7:
                var noise = new byte[random.Next(0, 2000)];
                random.NextBytes(noise);
                return ("random bytes", noise, json);
            case 8:
                var at = valid.IndexOf("\"content\":\"", StringComparison.Ordinal);
                if (at < 0)
                {
                    at = valid.IndexOf("\"text\":\"", StringComparison.Ordinal) - 3;
                }
                var invalid = new[] { new byte[] { 0xFF }, [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82] }[random.Next(5)];
                var split = Encoding.UTF8.GetByteCount(valid[..(at + 11)]);
                return ("invalid UTF-8", [.. bytes[..split], .. invalid, .. bytes[split..]], json);
            case 9:
                var escape = new[] { "\\uD800", "\\uDFFF", "\\uD83D", "\\u0000", "\\uFFFF", "\\uD83D\\uDE00", "\\u00", "\\x41" }[random.Next(8)];
                return ("escapes", Encoding.UTF8.GetBytes(valid.Replace("\"user\"", $"\"us{escape}er\"", StringComparison.Ordinal)
                    .Replace("\"Hi\"", $"\"H{escape}i\"", StringComparison.Ordinal).Replace("\"Say hello\"", $"\"Say {escape}\"", StringComparison.Ordinal)), json);
            case 10:
                var number = new[] { "1e400", "-1e400", "1e-400", "123456789012345678901234567890", "-0", "0.0000000000000000001", "NaN", "Infinity", "01", "1.", ".5", "2e308" }[random.Next(12)];
                var field = new[] { "temperature", "top_p", "max_tokens", "n", "seed", "presence_penalty", "top_logprobs" }[random.Next(7)];
                return ("extreme number", Encoding.UTF8.GetBytes(valid.Insert(1, $"\"{field}\":{number},")), json);
            case 11:
                return ("duplicate keys", Encoding.UTF8.GetBytes(valid.Insert(1, "\"model\":\"manus-fallback\",\"messages\":[],")), json);
            case 12:
                var type = new[] { "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=utf-16", "application/xml", null, "application/json; charset=\"utf-8\"", "*/*", "application/", ";;;" }[random.Next(10)];
                return ("content type", bytes, type);
            case 13:
                var overridden = JsonNode.Parse(valid)!.AsObject();
                overridden[new[] { "api_base", "base_url", "api_key", "custom_llm_provider", "extra_headers", "fallbacks" }[random.Next(6)]] = "http://169.254.169.254/";
                return ("provider override", Encoding.UTF8.GetBytes(overridden.ToJsonString()), json);
            case 14:
                return ("random JSON", Encoding.UTF8.GetBytes(RandomValue(random, depth: 0)?.ToJsonString() ?? "null"), json);
            default:
                var many = JsonNode.Parse(valid)!.AsObject();
                var messages = new JsonArray();
                for (var k = random.Next(SecuredGatewayFixture.MaxMessages + 1, 60); k > 0; k--)
                {
                    messages.Add(new JsonObject { ["role"] = "user", ["content"] = "again" });
                }
                many["messages"] = messages;
                return ("too many messages", Encoding.UTF8.GetBytes(many.ToJsonString()), json);
        }
    }

    private static JsonNode? RandomValue(Random random, int depth)
    {
        switch (random.Next(depth > 3 ? 6 : 8))
        {
            case 0: return null;
            case 1: return random.Next(2) == 0;
            case 2: return random.Next(-1000, 1000);
            case 3: return random.NextDouble() * Math.Pow(10, random.Next(-10, 20)) * (random.Next(2) == 0 ? -1 : 1);
            case 4: return RandomString(random);
            case 5: return "";
            case 6:
                var array = new JsonArray();
                for (var k = random.Next(5); k > 0; k--)
                {
                    array.Add(RandomValue(random, depth + 1));
                }
                return array;
            default:
                var obj = new JsonObject();
                for (var k = random.Next(5); k > 0; k--)
                {
                    obj[random.Next(3) == 0 ? Fields[random.Next(Fields.Length)] : RandomString(random)] = RandomValue(random, depth + 1);
                }
                return obj;
        }
    }

    private static string RandomString(Random random)
    {
        var chars = new char[random.Next(1, 40)];
        for (var k = 0; k < chars.Length; k++)
        {
            chars[k] = random.Next(4) switch
            {
                0 => (char)random.Next(0, 0x20),
                1 => (char)random.Next(0x80, 0x800),
                _ => (char)random.Next(0x20, 0x7F),
            };
        }
        return new string(chars);
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FuzzCollection
{
    public const string Name = "Fuzz, alone";
}
