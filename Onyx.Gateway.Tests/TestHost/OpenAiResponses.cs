using System.Net;
using System.Text.Json.Nodes;

namespace Onyx.Gateway.Tests.TestHost;

/// <summary>Reading a gateway response as an OpenAI client does: its headers and its error body.</summary>
public static class OpenAiResponses
{
    /// <summary>The single value of response header <paramref name="name"/>, or <see langword="null"/>.</summary>
    public static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? values.Single() : null;

    /// <summary>
    /// The <c>error</c> object of an OpenAI error response with <paramref name="status"/>, after checking it has the
    /// shape OpenAI's SDKs read: JSON, a message, a type, and <c>param</c> and <c>code</c> present.
    /// </summary>
    public static async Task<JsonNode> ErrorOf(HttpResponseMessage response, HttpStatusCode status)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        var error = body["error"]!;
        Assert.False(string.IsNullOrWhiteSpace((string?)error["message"]));
        Assert.NotNull(error["type"]);
        Assert.True(error.AsObject().ContainsKey("param"));
        Assert.True(error.AsObject().ContainsKey("code"));
        return error;
    }
}
