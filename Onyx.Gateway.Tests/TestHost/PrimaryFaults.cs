using System.Net;
using System.Text.Json.Nodes;
using Onyx.Gateway.Tests.Fakes;

namespace Onyx.Gateway.Tests.TestHost;

/// <summary>
/// The faults a primary can have before its first token, by name (for theory data), with how many attempts the retry
/// policy gives it: a 5xx, a reset or a malformed stream is retried once; a 429 whose Retry-After is longer than the
/// gateway waits, a refused key, a 404 or a silent deployment is not.
/// </summary>
public static class PrimaryFaults
{
    public static TheoryData<string> BeforeFirstToken() =>
    [
        "500", "503", "429", "502-html", "408", "401", "403", "404", "malformed", "error-first-event",
    ];

    /// <summary>The faults where the primary sends no first token: only the first-token limit ends them.</summary>
    public static TheoryData<string> Silent() => ["hang-before-headers", "headers-then-hang", "slow-first-token"];

    public static FakeFault Fault(string name) => name switch
    {
        "500" => FakeFault.Status(500),
        "503" => FakeFault.Status(503),
        // Longer than the gateway waits (3 s): the next deployment at once.
        "429" => FakeFault.Status(429, headers: new Dictionary<string, string> { ["Retry-After"] = "30" }),
        "502-html" => FakeFault.Status(502, "<html><body><h1>502 Bad Gateway</h1></body></html>", new Dictionary<string, string> { ["Content-Type"] = "text/html" }),
        "408" => FakeFault.Status(408),
        "401" => FakeFault.Status(401),
        "403" => FakeFault.Status(403),
        "404" => FakeFault.Status(404),
        "malformed" => FakeFault.MalformedChunk,
        "error-first-event" => FakeFault.ErrorFirstEvent,
        "hang-before-headers" => FakeFault.HangBeforeHeaders,
        "headers-then-hang" => FakeFault.HeadersThenHang,
        "slow-first-token" => FakeFault.SlowFirstToken(TimeSpan.FromSeconds(30)),
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    /// <summary>The attempts the primary gets for <paramref name="name"/> before the fallback is tried.</summary>
    public static int AttemptsOnThePrimary(string name) => name switch
    {
        "500" or "503" or "502-html" or "408" or "malformed" or "error-first-event" => 2,
        _ => 1,
    };

    /// <summary>With the fault <paramref name="name"/> on the primary, a streamed request is answered whole by the fallback.</summary>
    public static async Task AssertStreamedByTheFallbackAsync(GatewayHost gateway, HttpClient client, string name)
    {
        gateway.Primary.Fault = Fault(name);
        var primaryAttempts = AttemptsOnThePrimary(name);

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("true", Headers.Get(response, "x-onyx-fallback"));
        Assert.Equal("ollama/mistral:7b-instruct", Headers.Get(response, "x-onyx-deployment"));
        Assert.Equal((primaryAttempts + 1).ToString(System.Globalization.CultureInfo.InvariantCulture), Headers.Get(response, "x-onyx-attempts"));
        var events = Sse.Events(await response.Content.ReadAsStringAsync());
        Assert.Equal(gateway.Fallback.ExpectedText, Sse.Content(events));
        Assert.Equal("mistral:7b-instruct", (string?)JsonNode.Parse(events[0])!["model"]);
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal(primaryAttempts, gateway.Primary.Calls);
        Assert.Equal(1, gateway.Fallback.Calls);
    }
}

/// <summary>Response headers as a client reads them.</summary>
public static class Headers
{
    public static string? Get(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values)
            ? string.Join(",", values)
            : null;
}
