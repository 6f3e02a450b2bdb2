using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;
using static Microsoft.Playwright.Assertions;

namespace Onyx.Gateway.Tests.Ui;

/// <summary>
/// The admin console in a real browser (headless chromium through Playwright) against a gateway with fake providers:
/// what an operator does there, and what the API then does.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed partial class AdminConsoleTests(ConsoleFixture console)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private GatewayHost Gateway => console.Gateway;

    [Fact]
    public async Task SignsInWithTheMasterKeyOnlyAndSignsOut()
    {
        var page = await console.NewPageAsync();
        await page.GotoAsync("/ui/keys");
        Assert.Matches("/ui/signin\\?returnUrl=%2Fui%2Fkeys$", page.Url);

        await page.GetByLabel("Master key").FillAsync("sk-not-the-master-key");
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Alert)).ToHaveTextAsync("That is not the master key.");
        Assert.Equal("", await page.GetByLabel("Master key").InputValueAsync());
        await Gateway.Logs.WaitForAsync(r => r.EventId == 9001, Deadline);

        // A key that opens the API is not one that opens the console.
        var apiKey = await GenerateKeyAsync("""{"user_id":"not-an-admin"}""");
        await page.GetByLabel("Master key").FillAsync(apiKey);
        var refused = await page.RunAndWaitForResponseAsync(
            () => page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync(), r => r.Request.Method == "POST");
        Assert.Equal(401, refused.Status);
        await Expect(page.GetByRole(AriaRole.Alert)).ToHaveTextAsync("That is not the master key.");
        Assert.DoesNotContain(await page.Context.CookiesAsync(), c => c.Name == "onyx-console");

        await page.GetByLabel("Master key").FillAsync(ConsoleFixture.MasterKey);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Keys", Level = 1 })).ToBeVisibleAsync();

        var session = (await page.Context.CookiesAsync()).Single(c => c.Name == "onyx-console");
        Assert.True(session.HttpOnly);
        Assert.Equal(SameSiteAttribute.Strict, session.SameSite);
        Assert.Equal("/ui", session.Path);
        Assert.Equal(-1, session.Expires); // a session cookie: gone with the browser, and the ticket inside lapses after 20 min unused
        Assert.DoesNotContain(ConsoleFixture.MasterKey, await page.ContentAsync());

        await page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Sign in to the admin console" })).ToBeVisibleAsync();
        await page.GotoAsync("/ui");
        Assert.Contains("/ui/signin", page.Url);
    }

    [Fact]
    public async Task KeyCreatedInTheConsoleIsShownOnceAnswersShowsItsSpendAndAuditAndIsRefusedOnceRevoked()
    {
        var page = await console.SignedInPageAsync();
        await page.GotoAsync("/ui/keys");
        var form = page.Locator("#create-key");
        await form.GetByLabel("User").FillAsync("console-team");
        await form.GetByLabel("Requests per minute").FillAsync("50");
        await form.GetByLabel("Max budget (USD)").FillAsync("5");
        await form.GetByLabel("Budget window").SelectOptionAsync("1d");
        await form.GetByLabel("manus-primary").CheckAsync();
        await form.GetByRole(AriaRole.Button, new() { Name = "Create key" }).ClickAsync();

        var key = await page.Locator("#new-key").TextContentAsync() ?? "";
        Assert.Matches("^sk-[A-Za-z0-9_-]{43}$", key);
        var name = await page.Locator("#new-key-name").TextContentAsync() ?? "";
        Assert.Equal("sk-..." + key[^4..], name);
        var row = page.Locator("#keys tbody tr", new() { HasText = name });
        await Expect(row).ToContainTextAsync("console-team");
        await Expect(row).ToContainTextAsync("manus-primary");
        await Expect(row).ToContainTextAsync("$5.00 / 1d");

        // Shown once: the list and the key's own page never carry it again.
        await page.GotoAsync("/ui/keys");
        Assert.DoesNotContain(key, await page.ContentAsync());
        await row.GetByRole(AriaRole.Link, new() { Name = name }).ClickAsync();
        await Expect(page.Locator("#key-name")).ToHaveTextAsync(name);
        Assert.DoesNotContain(key, await page.ContentAsync());
        var keyPage = page.Url;

        using var client = Gateway.CreateClient(key);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody()) };
        request.Headers.Add("x-request-id", "console-key-call-1");
        using (var answered = await client.SendAsync(request))
        {
            Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        }

        // Its spend: settled when the call ends, off the response's path; the page shows it once there.
        await ReloadUntilAsync(page, keyPage, page.Locator("#key-spend"), new Regex(@"^\$0\.0\d*[1-9]"));

        var record = page.Locator("#records tbody tr", new() { HasText = "console-key-call-1" });
        await ReloadUntilVisibleAsync(page, "/ui/audit?key=" + Uri.EscapeDataString(name), record);
        await Expect(record).ToContainTextAsync("console-team");
        await Expect(record).ToContainTextAsync("200");
        await record.GetByRole(AriaRole.Link).ClickAsync();
        await Expect(page.Locator("#request-id")).ToHaveTextAsync("console-key-call-1");
        await Expect(page.Locator("#attempts tbody tr").First).ToContainTextAsync("together_ai/deepseek-ai/DeepSeek-V3");
        await Expect(page.Locator("#attempts tbody tr").First).ToContainTextAsync("success");

        await page.GotoAsync("/ui/spend?period=1h&key=" + Uri.EscapeDataString(name));
        await Expect(page.Locator("#spend-total")).ToHaveTextAsync(new Regex(@"^\$0\.0\d*[1-9]"));
        await Expect(page.Locator("#by-user tbody tr", new() { HasText = "console-team" })).ToBeVisibleAsync();
        await Expect(page.Locator("#by-model tbody tr", new() { HasText = "manus-primary" })).ToBeVisibleAsync();

        await page.GotoAsync(keyPage);
        await page.GetByRole(AriaRole.Button, new() { Name = "Revoke " + name }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Status)).ToHaveTextAsync($"Key {name} was revoked.");
        await Expect(page.Locator("#keys tbody tr", new() { HasText = name })).ToHaveCountAsync(0);

        using var refused = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Equal("invalid_api_key", (string?)JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!["code"]);
    }

    [Fact]
    public async Task PlaygroundStreamsTheFallbacksAnswerWhenThePrimaryFails()
    {
        // The primary fails its first call and its one retry: the fallback answers.
        Gateway.Primary.Reset();
        Gateway.Primary.FailNext(2, FakeFault.Status(503));
        Gateway.Fallback.Update(b => b with { Tokens = ["Hello", " from", " the", " fallback", " model"], TokenDelay = TimeSpan.FromMilliseconds(30) });
        try
        {
            var page = await console.SignedInPageAsync();
            await page.GotoAsync("/ui/playground");
            await page.GetByLabel("Alias").SelectOptionAsync("manus-primary");
            await page.GetByLabel("Prompt").FillAsync("Say hello from the playground");
            await page.GetByRole(AriaRole.Button, new() { Name = "Send" }).ClickAsync();

            await Expect(page.Locator("#pg-answer")).ToHaveTextAsync("Hello from the fallback model");
            await Expect(page.Locator("#pg-status")).ToHaveTextAsync("200");
            await Expect(page.Locator("#pg-deployment")).ToHaveTextAsync("ollama/mistral:7b-instruct");
            await Expect(page.Locator("#pg-fallback")).ToHaveTextAsync("yes");
            await Expect(page.Locator("#pg-attempts")).ToHaveTextAsync("3");
            await Expect(page.Locator("#pg-ttft")).ToHaveTextAsync(new Regex(@"^\d+ ms at the gateway, \d+ ms in this browser$"));
            var attempts = page.Locator("#pg-attempt-table tbody tr");
            await Expect(attempts.First).ToContainTextAsync("together_ai/deepseek-ai/DeepSeek-V3");
            await Expect(attempts.First).ToContainTextAsync("http_503");
            await Expect(attempts.Last).ToContainTextAsync("ollama/mistral:7b-instruct");
            await Expect(attempts.Last).ToContainTextAsync("success");
            Assert.Equal(2, Gateway.Primary.Calls);
            await ConsoleFixture.ScreenshotAsync(page, "playground");
        }
        finally
        {
            Gateway.Fallback.Reset();
            Gateway.Primary.Reset();
        }
    }

    [Fact]
    public async Task EveryPageRendersUnderItsPolicyWithoutScriptAndFitsAPhone()
    {
        // Traffic first: answered, streamed, failed over.
        Gateway.Primary.Reset();
        var key = await GenerateKeyAsync("""{"user_id":"screenshot-team","key_alias":"reporting","max_budget":2,"budget_duration":"30d"}""");
        using (var client = Gateway.CreateClient(key))
        {
            for (var i = 0; i < 3; i++)
            {
                using var ok = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: i % 2 == 0)));
                Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
                await ok.Content.ReadAsStringAsync();
            }
            Gateway.Primary.FailNext(2, FakeFault.Status(503));
            using var fellOver = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
            Assert.True(fellOver.StatusCode == HttpStatusCode.OK, await fellOver.Content.ReadAsStringAsync());
            Assert.Equal("true", fellOver.Headers.GetValues("x-onyx-fallback").Single());
            await fellOver.Content.ReadAsStringAsync();
            Assert.Equal(5, Gateway.Primary.Calls);
        }

        var violations = new List<string>();
        var page = await console.SignedInPageAsync();
        page.Console += (_, message) =>
        {
            if (message.Type == "error")
            {
                violations.Add(message.Text);
            }
        };
        foreach (var (path, name) in new[] { ("/ui?window=1h", "overview"), ("/ui/keys", "keys"), ("/ui/spend?period=24h", "spend"), ("/ui/audit", "audit") })
        {
            var response = await page.GotoAsync(path);
            Assert.Equal(200, response!.Status);
            Assert.Equal(ConsolePolicy, await response.HeaderValueAsync("content-security-policy"));
            // Whatever cookie the console sets is for the console alone: never sent to /v1, nor readable by script.
            foreach (var cookie in (await response.HeaderValueAsync("set-cookie") ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                Assert.Contains("path=/ui", cookie, StringComparison.OrdinalIgnoreCase);
                Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
            }
            await ConsoleFixture.ScreenshotAsync(page, name);
        }
        var fallbackRow = page.Locator("#records tbody tr").First;
        await ReloadUntilVisibleAsync(page, "/ui/audit?user=screenshot-team&fallback=yes", fallbackRow);
        await fallbackRow.GetByRole(AriaRole.Link).ClickAsync();
        await Expect(page.Locator("#record-fallback")).ToHaveTextAsync("yes");
        await ConsoleFixture.ScreenshotAsync(page, "audit-record");
        await page.GotoAsync("/ui/keys");
        await page.Locator("#keys tbody tr", new() { HasText = "reporting" }).GetByRole(AriaRole.Link).ClickAsync();
        await ConsoleFixture.ScreenshotAsync(page, "key");
        Assert.Empty(violations);

        // The overview counts every request of the window from the audit trail, and names the deployments' breakers.
        await page.GotoAsync("/ui?window=5m");
        await Expect(page.Locator("#deployments tbody tr", new() { HasText = "together_ai/deepseek-ai/DeepSeek-V3" })).ToContainTextAsync("closed");
        await Expect(page.Locator("#replicas tbody tr").First).ToContainTextAsync("(this one)");
        await Expect(page.Locator("#replicas tbody tr").First).ToContainTextAsync("live");

        // At 390 px wide nothing spills sideways (wide tables scroll inside their own box), and no page needs script.
        var phone = await console.SignedInPageAsync(width: 390, height: 844);
        foreach (var path in new[] { "/ui", "/ui/keys", "/ui/spend", "/ui/audit", "/ui/playground" })
        {
            await phone.GotoAsync(path);
            Assert.True(await phone.EvaluateAsync<bool>("document.documentElement.scrollWidth <= window.innerWidth"), $"{path} is wider than 390 px");
        }
        await phone.GotoAsync("/ui");
        await ConsoleFixture.ScreenshotAsync(phone, "overview-390");
    }

    [Fact]
    public async Task FormsAndPagesWorkWithJavaScriptOff()
    {
        var context = await console.Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = Gateway.BaseAddress.ToString().TrimEnd('/'),
            JavaScriptEnabled = false,
        });
        var page = await context.NewPageAsync();
        await page.GotoAsync("/ui/signin");
        await page.GetByLabel("Master key").FillAsync(ConsoleFixture.MasterKey);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await page.GotoAsync("/ui/keys");
        await page.Locator("#create-key").GetByLabel("User").FillAsync("no-script-team");
        await page.Locator("#create-key").GetByRole(AriaRole.Button, new() { Name = "Create key" }).ClickAsync();
        await Expect(page.Locator("#new-key")).ToHaveTextAsync(new Regex("^sk-"));
        await Expect(page.Locator("#keys tbody tr", new() { HasText = "no-script-team" })).ToHaveCountAsync(1);
        await context.DisposeAsync();
    }

    private const string ConsolePolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; " +
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

    private async Task<string> GenerateKeyAsync(string body)
    {
        using var admin = Gateway.CreateClient(ConsoleFixture.MasterKey);
        using var response = await admin.PostAsync("/key/generate", GatewayHost.Json(body));
        response.EnsureSuccessStatusCode();
        return (string)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["key"]!;
    }

    /// <summary>
    /// Loads <paramref name="url"/> again after each write to the gateway's Redis until <paramref name="locator"/> shows
    /// <paramref name="expected"/>: a page shows what the gateway knew when it rendered, and what a call leaves behind
    /// (spend, its audit record) reaches Redis just after its answer.
    /// </summary>
    private Task ReloadUntilAsync(IPage page, string url, ILocator locator, Regex expected) =>
        RedisWrites.WaitForAsync(console.Redis.ConnectionString, async () =>
        {
            await page.GotoAsync(url);
            return await locator.CountAsync() == 0 ? "" : await locator.First.TextContentAsync() ?? "";
        }, expected.IsMatch, Deadline, $"{locator} on {url} to show {expected}", text => $"'{text}'");

    private Task ReloadUntilVisibleAsync(IPage page, string url, ILocator locator) =>
        RedisWrites.WaitForAsync(console.Redis.ConnectionString, async () =>
        {
            await page.GotoAsync(url);
            return await locator.CountAsync();
        }, count => count > 0, Deadline, $"{locator} on {url}");
}
