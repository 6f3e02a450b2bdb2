using System.Net;
using System.Text.Json.Nodes;

namespace Onyx.Gateway.Tests.TestHost;

/// <summary>Requests whose audit records a test follows, and the trail as <c>GET /audit</c> shows it.</summary>
public static class AuditTraffic
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    /// <summary>A prompt of about 8 KB: with the content recorded, a few records fill a 64 KiB file.</summary>
    public static readonly string LongPrompt = string.Concat(Enumerable.Repeat("lorem ipsum ", 680));

    /// <summary>
    /// Sends <paramref name="count"/> requests with <paramref name="key"/>, each answered (200), with the request ids
    /// <c>&lt;prefix&gt;-&lt;first&gt;</c>, <c>&lt;prefix&gt;-&lt;first + 1&gt;</c>…
    /// </summary>
    public static async Task SendAsync(GatewayHost gateway, string key, int count, string prefix, string prompt = "Say hello", int first = 0)
    {
        using var client = gateway.CreateClient(key);
        var body = new JsonObject
        {
            ["model"] = "manus-primary",
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = prompt }),
        }.ToJsonString();
        for (var i = 0; i < count; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(body) };
            request.Headers.Add("x-request-id", $"{prefix}-{first + i}");
            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
    }

    /// <summary>
    /// The trail through <c>GET /audit</c> (<paramref name="admin"/> sends the master key), newest first, once it holds
    /// <paramref name="count"/> records (read again on each write to the trail's <paramref name="redis"/>); more fails
    /// at once.
    /// </summary>
    public static Task<List<JsonNode?>> ReadAsync(HttpClient admin, string redis, int count) =>
        RedisWrites.WaitForAsync(redis, async () =>
        {
            using var response = await admin.GetAsync("/audit");
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"/audit: {(int)response.StatusCode} {body}");
            List<JsonNode?> data = [.. JsonNode.Parse(body)!["data"]!.AsArray()];
            Assert.True(data.Count <= count, $"{data.Count} audit records, expected {count}: {body}");
            return data;
        }, data => data.Count == count, Deadline, $"{count} audit records", data => $"{data.Count} records");
}
