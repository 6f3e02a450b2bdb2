using System.Diagnostics.Metrics;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.RateLimiting;

/// <summary>
/// The limits as a caller sees them — headers, 429s, Retry-After — on a single gateway (counters in memory), with a
/// fake clock so every figure is exact.
/// </summary>
public sealed class RateLimitTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _time = TestClock.Create();
    private GatewayHost _gateway = null!;
    private HttpClient _client = null!;

    public Task InitializeAsync() => Task.CompletedTask;

    private async Task StartAsync(Dictionary<string, string?> settings)
    {
        _gateway = await GatewayHost.StartAsync(settings, services => services.AddSingleton<TimeProvider>(_time));
        _client = _gateway.CreateClient();
    }

    public async Task DisposeAsync()
    {
        _client?.Dispose();
        if (_gateway is not null)
        {
            await _gateway.DisposeAsync();
        }
    }

    [Fact]
    public async Task AdmitsExactlyTheLimitThenRefusesUntilTheOldestRequestLeavesTheWindow()
    {
        await StartAsync(new() { ["litellm_settings:rate_limit:rpm"] = "5" });

        using var first = await SendAsync();
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal("5", OpenAiResponses.Header(first, "x-ratelimit-limit-requests"));
        Assert.Equal("4", OpenAiResponses.Header(first, "x-ratelimit-remaining-requests"));
        Assert.Equal("1m0s", OpenAiResponses.Header(first, "x-ratelimit-reset-requests"));

        _time.Advance(TimeSpan.FromSeconds(10));
        for (var remaining = 3; remaining >= 0; remaining--)
        {
            using var response = await SendAsync();
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(remaining.ToString(System.Globalization.CultureInfo.InvariantCulture), OpenAiResponses.Header(response, "x-ratelimit-remaining-requests"));
            // The first request leaves the window 50 s from now.
            Assert.Equal("50s", OpenAiResponses.Header(response, "x-ratelimit-reset-requests"));
        }

        using var refused = await SendAsync();
        var error = await OpenAiResponses.ErrorOf(refused, HttpStatusCode.TooManyRequests);
        Assert.Equal("rate_limit_exceeded", (string?)error["code"]);
        Assert.Equal("requests", (string?)error["type"]);
        Assert.Contains("5 requests per 1m0s", (string?)error["message"]);
        Assert.Equal("50", OpenAiResponses.Header(refused, "Retry-After"));
        Assert.Equal("50000", OpenAiResponses.Header(refused, "retry-after-ms"));
        Assert.Equal("0", OpenAiResponses.Header(refused, "x-ratelimit-remaining-requests"));

        _time.Advance(TimeSpan.FromSeconds(50) - TimeSpan.FromMilliseconds(1));
        using var stillRefused = await SendAsync();
        Assert.Equal(HttpStatusCode.TooManyRequests, stillRefused.StatusCode);
        Assert.Equal("1", OpenAiResponses.Header(stillRefused, "retry-after-ms"));

        _time.Advance(TimeSpan.FromMilliseconds(1));
        using var admitted = await SendAsync();
        Assert.Equal(HttpStatusCode.OK, admitted.StatusCode);
        Assert.Equal("0", OpenAiResponses.Header(admitted, "x-ratelimit-remaining-requests"));
        Assert.Equal(6, _gateway.Primary.Calls);
    }

    [Fact]
    public async Task AnUnknownModelIsRefusedBeforeItIsCounted()
    {
        await StartAsync(new() { ["litellm_settings:rate_limit:rpm"] = "2" });

        using var unknown = await _client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody("no-such-model")));
        Assert.Equal("model_not_found", (string?)(await OpenAiResponses.ErrorOf(unknown, HttpStatusCode.NotFound))["code"]);
        Assert.Null(OpenAiResponses.Header(unknown, "x-ratelimit-remaining-requests"));

        // The caller still has its whole limit.
        using var first = await SendAsync();
        Assert.Equal("1", OpenAiResponses.Header(first, "x-ratelimit-remaining-requests"));
        using var second = await SendAsync();
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal("0", OpenAiResponses.Header(second, "x-ratelimit-remaining-requests"));
    }

    [Fact]
    public async Task CountsTheTokensOfEachCallStreamsIncludedAndRefusesOnceTheyReachTheLimit()
    {
        // Each fake answer uses 12 prompt + 4 completion = 16 tokens.
        await StartAsync(new() { ["litellm_settings:rate_limit:tpm"] = "40" });
        var perCall = 12 + _gateway.Primary.Tokens.Count;

        using var first = await SendAsync();
        Assert.Equal("40", OpenAiResponses.Header(first, "x-ratelimit-limit-tokens"));
        Assert.Equal("40", OpenAiResponses.Header(first, "x-ratelimit-remaining-tokens"));
        _time.Advance(TimeSpan.FromSeconds(5));

        using var streamed = await SendAsync(stream: true);
        Assert.Equal((40 - perCall).ToString(System.Globalization.CultureInfo.InvariantCulture), OpenAiResponses.Header(streamed, "x-ratelimit-remaining-tokens"));
        Assert.Equal("[DONE]", Sse.Events(await streamed.Content.ReadAsStringAsync())[^1]);
        _time.Advance(TimeSpan.FromSeconds(5));

        using var third = await SendAsync();
        Assert.Equal((40 - 2 * perCall).ToString(System.Globalization.CultureInfo.InvariantCulture), OpenAiResponses.Header(third, "x-ratelimit-remaining-tokens"));

        using var refused = await SendAsync();
        var error = await OpenAiResponses.ErrorOf(refused, HttpStatusCode.TooManyRequests);
        Assert.Equal("tokens", (string?)error["type"]);
        Assert.Equal("0", OpenAiResponses.Header(refused, "x-ratelimit-remaining-tokens"));
        // 48 tokens in the window; once the first call's 16 leave (50 s from now), 32 < 40.
        Assert.Equal("50000", OpenAiResponses.Header(refused, "retry-after-ms"));
        Assert.Equal(3, _gateway.Primary.Calls);
    }

    [Fact]
    public async Task AStreamTheClientCancelsCountsWhatWasProduced()
    {
        await StartAsync(new() { ["litellm_settings:rate_limit:tpm"] = "1000" });
        _gateway.Primary.Fault = FakeFault.StallAfter(2);

        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody(stream: true)) })
        using (var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        using (var reader = new StreamReader(await response.Content.ReadAsStreamAsync()))
        {
            var tokens = 0;
            while (tokens < 2 && await reader.ReadLineAsync() is { } line)
            {
                tokens += line.Contains("\"content\":\"", StringComparison.Ordinal) ? 1 : 0;
            }
        }
        var cancelled = await _gateway.Logs.WaitForAsync(r => r.EventId == 3001 && (int?)r["Status"] == 499, TimeSpan.FromSeconds(10));
        var counted = (int)cancelled["TotalTokens"]!;
        Assert.True((int)cancelled["completionTokens"]! > 0);
        _gateway.Primary.Fault = FakeFault.None;

        using var next = await SendAsync();
        Assert.Equal((1000 - counted).ToString(System.Globalization.CultureInfo.InvariantCulture), OpenAiResponses.Header(next, "x-ratelimit-remaining-tokens"));
    }

    [Fact]
    public async Task ACallThatFailedBeforeAnyTokenCostsNoTokens()
    {
        await StartAsync(new() { ["litellm_settings:rate_limit:tpm"] = "40" });
        _gateway.Primary.Fault = FakeFault.Status(500);
        _gateway.Fallback.Fault = FakeFault.Status(500);

        using var failed = await SendAsync();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.StatusCode);
        await _gateway.Logs.WaitForAsync(r => r.EventId == 3001 && (int?)r["Status"] == 503, TimeSpan.FromSeconds(10));
        _gateway.Primary.Fault = FakeFault.None;

        using var next = await SendAsync();
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        Assert.Equal("40", OpenAiResponses.Header(next, "x-ratelimit-remaining-tokens"));
    }

    [Fact]
    public async Task CapsRequestsInFlightAndFreesTheSlotWhenOneEnds()
    {
        await StartAsync(new() { ["litellm_settings:rate_limit:max_parallel_requests"] = "1" });
        _gateway.Primary.Fault = FakeFault.HangBeforeHeaders;
        using var cancel = new CancellationTokenSource();
        var hanging = _client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)), cancel.Token);
        await _gateway.Primary.WaitForCallsAsync(1, TimeSpan.FromSeconds(10));

        using var refused = await SendAsync();
        var error = await OpenAiResponses.ErrorOf(refused, HttpStatusCode.TooManyRequests);
        Assert.Equal("parallel_requests", (string?)error["type"]);
        Assert.Equal("1", OpenAiResponses.Header(refused, "Retry-After"));

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => hanging);
        // The call's record is written once its slot is freed.
        await _gateway.Logs.WaitForAsync(r => r.EventId == 3001 && (int?)r["Status"] == 499, TimeSpan.FromSeconds(10));
        _gateway.Primary.Fault = FakeFault.None;

        using var admitted = await SendAsync();
        Assert.Equal(HttpStatusCode.OK, admitted.StatusCode);
    }

    [Fact]
    public async Task LimitsEndUsersWithinOneCallerWhenConfigured()
    {
        await StartAsync(new() { ["Onyx:RateLimits:EndUser:Rpm"] = "2" });

        for (var i = 0; i < 2; i++)
        {
            using var ok = await SendAsync(user: "alice");
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        using var refused = await SendAsync(user: "alice");
        var error = await OpenAiResponses.ErrorOf(refused, HttpStatusCode.TooManyRequests);
        Assert.Contains("end user 'alice'", (string?)error["message"]);
        // The headers stay the caller's own: 3 of its 100 are used.
        Assert.Equal("98", OpenAiResponses.Header(refused, "x-ratelimit-remaining-requests"));

        using var bob = await SendAsync(user: "bob");
        Assert.Equal(HttpStatusCode.OK, bob.StatusCode);
        Assert.Equal("97", OpenAiResponses.Header(bob, "x-ratelimit-remaining-requests"));
    }

    [Fact]
    public async Task LogsAndCountsEachRefusal()
    {
        await StartAsync(new() { ["litellm_settings:rate_limit:rpm"] = "1" });
        var factory = _gateway.Services.GetRequiredService<IMeterFactory>();
        var refusals = new List<(long Value, Dictionary<string, object?> Tags)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Scope == factory && instrument.Name == "onyx.gateway.rate_limit.refusals")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            lock (refusals)
            {
                refusals.Add((value, tags.ToArray().ToDictionary(t => t.Key, t => t.Value)));
            }
        });
        listener.Start();

        (await SendAsync()).Dispose();
        (await SendAsync()).Dispose();
        (await SendAsync()).Dispose();

        var logged = _gateway.Logs.Records.Where(r => r.EventId == 5001).ToList();
        Assert.Equal(2, logged.Count);
        Assert.All(logged, r => Assert.Equal("requests", r["Limit"]));
        Assert.All(logged, r => Assert.Equal("anonymous", r["Subject"]));
        lock (refusals)
        {
            Assert.Equal(2, refusals.Count);
            Assert.All(refusals, r => Assert.Equal("requests", r.Tags["onyx.limit"]));
            Assert.All(refusals, r => Assert.Equal("manus-primary", r.Tags["onyx.alias"]));
        }
    }

    [Fact]
    public async Task CanBeSwitchedOff()
    {
        await StartAsync(new() { ["litellm_settings:rate_limit:rpm"] = "1", ["Onyx:RateLimits:Enabled"] = "false" });

        for (var i = 0; i < 3; i++)
        {
            using var response = await SendAsync();
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Null(OpenAiResponses.Header(response, "x-ratelimit-limit-requests"));
        }
    }

    [Theory]
    [InlineData(0, "0s")]
    [InlineData(20, "20ms")]
    [InlineData(999.2, "1s")]
    [InlineData(1500, "1.5s")]
    [InlineData(59_999, "59.999s")]
    [InlineData(60_000, "1m0s")]
    [InlineData(360_000, "6m0s")]
    [InlineData(90_500, "1m30.5s")]
    [InlineData(3_723_000, "1h2m3s")]
    public void FormatsDurationsTheWayOpenAiDoes(double milliseconds, string expected) =>
        Assert.Equal(expected, Onyx.Gateway.RateLimiting.RateLimitDecision.FormatDuration(TimeSpan.FromMilliseconds(milliseconds)));

    private Task<HttpResponseMessage> SendAsync(bool stream = false, string? user = null) =>
        _client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: stream, extra: user is null ? "" : $",\"user\":\"{user}\"")));
}
