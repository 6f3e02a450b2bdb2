using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Ui;

/// <summary>
/// The console's walls, seen at the HTTP level as an attacker's page or script would meet them: its cookie is no API
/// credential, its playground answers only its own pages, its forms only with their token, and without a master key
/// there is no console at all.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed partial class ConsoleSecurityTests(ConsoleFixture console)
{
    private GatewayHost Gateway => console.Gateway;

    [Fact]
    public async Task PlaygroundAnswersOnlyASignedInPageOfTheConsoleWithItsToken()
    {
        using var session = await SignInAsync();
        var token = await TokenOfAsync(session.Client, "/ui/playground");
        var origin = Gateway.BaseAddress.GetLeftPart(UriPartial.Authority);

        Assert.Equal(HttpStatusCode.BadRequest, (await PlaygroundAsync(session.Client, token: null, origin)).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await PlaygroundAsync(session.Client, token: "CfDJ8forged", origin)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await PlaygroundAsync(session.Client, token, "http://evil.example")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await PlaygroundAsync(session.Client, token, origin, fetchSite: "cross-site")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await PlaygroundAsync(session.Client, token, origin: null, fetchSite: null)).StatusCode);
        var calls = Gateway.Primary.Calls;

        using var answered = await PlaygroundAsync(session.Client, token, origin, fetchSite: "same-origin");
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        Assert.Equal("text/event-stream", answered.Content.Headers.ContentType?.MediaType);
        Assert.Equal("Hello from the fake", Sse.Content(Sse.Events(await answered.Content.ReadAsStringAsync())));
        Assert.Equal(calls + 1, Gateway.Primary.Calls);

        // No session: the browser is sent to sign in, and nothing reaches a provider.
        using var stranger = NewClient(out _);
        using var anonymous = await PlaygroundAsync(stranger, token, origin, fetchSite: "same-origin");
        Assert.Equal(HttpStatusCode.Redirect, anonymous.StatusCode);
        Assert.StartsWith("/ui/signin", anonymous.Headers.Location?.PathAndQuery);
        Assert.Equal(calls + 1, Gateway.Primary.Calls);
    }

    [Fact]
    public async Task ConsoleSessionIsNoApiCredential()
    {
        using var session = await SignInAsync();
        // Path /ui: the cookie container, like a browser, has it only for the console's addresses.
        Assert.DoesNotContain(session.Cookies.GetCookies(Gateway.BaseAddress), c => c.Name == "onyx-console");
        var cookie = session.Cookies.GetCookies(new Uri(Gateway.BaseAddress, "/ui")).Single(c => c.Name == "onyx-console");
        Assert.Equal("/ui", cookie.Path);
        Assert.True(cookie.HttpOnly);

        // Even a client that sends the cookie where the browser never would gets no further than without it.
        using var client = Gateway.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody()) };
        request.Headers.Add("Cookie", $"onyx-console={cookie.Value}");
        using var refused = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Equal("missing_api_key", (string?)JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!["code"]);
        using var keys = new HttpRequestMessage(HttpMethod.Get, "/key/list");
        keys.Headers.Add("Cookie", $"onyx-console={cookie.Value}");
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.SendAsync(keys)).StatusCode);

        // The API's answers are untouched by the console: its own policy, no cookie.
        using var models = Gateway.CreateClient(ConsoleFixture.MasterKey);
        using var listed = await models.GetAsync("/v1/models");
        Assert.Equal("default-src 'none'; frame-ancestors 'none'", listed.Headers.GetValues("Content-Security-Policy").Single());
        Assert.False(listed.Headers.Contains("Set-Cookie"));
    }

    [Fact]
    public async Task FormPostsWithoutTheirTokenAreRefused()
    {
        using var client = NewClient(out var cookies);
        await TokenOfAsync(client, "/ui/signin");
        using var forged = await client.PostAsync("/ui/signin", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["_handler"] = "signin",
            ["Form.MasterKey"] = ConsoleFixture.MasterKey,
        }));
        Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
        Assert.DoesNotContain(cookies.GetCookies(new Uri(Gateway.BaseAddress, "/ui")), c => c.Name == "onyx-console");

        using var session = await SignInAsync();
        using var signOut = await session.Client.PostAsync("/ui/signout", new FormUrlEncodedContent(new Dictionary<string, string>()));
        Assert.Equal(HttpStatusCode.BadRequest, signOut.StatusCode);
        using var stillIn = await session.Client.GetAsync("/ui/keys");
        Assert.Equal(HttpStatusCode.OK, stillIn.StatusCode);
    }

    [Fact]
    public async Task ConsoleIsOffWithoutAMasterKey()
    {
        // No key at all: the gateway serves loopback callers without one, and the console must not become a way in.
        await using var open = await GatewayHost.StartAsync();
        using var client = open.CreateClient();
        foreach (var path in new[] { "/ui", "/ui/signin", "/ui/keys" })
        {
            using var off = await client.GetAsync(path);
            Assert.Equal(HttpStatusCode.NotFound, off.StatusCode);
            Assert.Contains("The admin console is off", await off.Content.ReadAsStringAsync());
        }
        using var chat = await client.PostAsync("/ui/playground/chat", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        Assert.Equal(HttpStatusCode.NotFound, chat.StatusCode);
        Assert.Equal(0, open.Primary.Calls);
    }

    private sealed record Session(HttpClient Client, CookieContainer Cookies) : IDisposable
    {
        public void Dispose() => Client.Dispose();
    }

    /// <summary>Signs in as a browser would: the form's token from the page, then the form posted with it.</summary>
    private async Task<Session> SignInAsync()
    {
        var client = NewClient(out var cookies);
        var token = await TokenOfAsync(client, "/ui/signin");
        using var signedIn = await client.PostAsync("/ui/signin", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["_handler"] = "signin",
            ["__RequestVerificationToken"] = token,
            ["Form.MasterKey"] = ConsoleFixture.MasterKey,
        }));
        Assert.Equal(HttpStatusCode.Redirect, signedIn.StatusCode);
        Assert.Equal("/ui", signedIn.Headers.Location?.OriginalString.Replace(Gateway.BaseAddress.GetLeftPart(UriPartial.Authority), "", StringComparison.Ordinal));
        return new Session(client, cookies);
    }

    private HttpClient NewClient(out CookieContainer cookies)
    {
        cookies = new CookieContainer();
        return new HttpClient(new HttpClientHandler { CookieContainer = cookies, AllowAutoRedirect = false })
        {
            BaseAddress = Gateway.BaseAddress,
            Timeout = TimeSpan.FromSeconds(30),
        };
    }

    private static async Task<string> TokenOfAsync(HttpClient client, string path)
    {
        using var page = await client.GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        return TokenField().Match(await page.Content.ReadAsStringAsync()) is { Success: true } match
            ? WebUtility.HtmlDecode(match.Groups[1].Value)
            : throw new InvalidOperationException($"{path} has no antiforgery token.");
    }

    private static Task<HttpResponseMessage> PlaygroundAsync(HttpClient client, string? token, string? origin, string? fetchSite = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/ui/playground/chat") { Content = GatewayHost.Json(GatewayHost.ChatBody(stream: true)) };
        if (token is not null)
        {
            request.Headers.Add("X-Onyx-Antiforgery", token);
        }
        if (origin is not null)
        {
            request.Headers.Add("Origin", origin);
        }
        if (fetchSite is not null)
        {
            request.Headers.Add("Sec-Fetch-Site", fetchSite);
        }
        return client.SendAsync(request);
    }

    [GeneratedRegex("name=\"__RequestVerificationToken\" value=\"([^\"]+)\"")]
    private static partial Regex TokenField();
}
