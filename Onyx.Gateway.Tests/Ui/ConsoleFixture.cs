using Microsoft.Playwright;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Ui;

/// <summary>
/// One gateway (master key, a real redis-server, fake providers with prices) on a loopback Kestrel port, and one
/// headless Debian chromium driven by Playwright, shared by a test class: each test opens its own browser context
/// (its own cookies), which costs milliseconds where a browser costs a second.
/// </summary>
public sealed class ConsoleFixture : IAsyncLifetime
{
    public const string MasterKey = "sk-master-console-4b7e2a91";

    /// <summary>Where the pages' screenshots go, under the test output.</summary>
    public static string ScreenshotDirectory { get; } = Path.Combine(AppContext.BaseDirectory, "screenshots", "ui");

    private IPlaywright? _playwright;

    public RedisServerProcess Redis { get; private set; } = null!;

    public GatewayHost Gateway { get; private set; } = null!;

    public IBrowser Browser { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var chromium = FindChromium();
        Redis = await RedisServerProcess.StartAsync(TimeSpan.FromSeconds(20));
        Gateway = await GatewayHost.StartAsync(new Dictionary<string, string?>
        {
            ["LITELLM_MASTER_KEY"] = MasterKey,
            ["ConnectionStrings:redis"] = Redis.ConnectionString,
            ["Onyx:Audit:RetryInterval"] = "00:00:00.100",
            // The tests fail the primary on purpose, a few times each: its breaker must not open on their sum.
            ["router_settings:allowed_fails"] = "100",
            // Prices, so calls have a cost that spend and budgets show.
            ["model_list:0:litellm_params:input_cost_per_million_tokens"] = "1250",
            ["model_list:0:litellm_params:output_cost_per_million_tokens"] = "2500",
            ["model_list:1:litellm_params:input_cost_per_million_tokens"] = "100",
            ["model_list:1:litellm_params:output_cost_per_million_tokens"] = "200",
        });
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = chromium, Headless = true });
        Assertions.SetDefaultExpectTimeout(15_000);
        Directory.CreateDirectory(ScreenshotDirectory);
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }
        _playwright?.Dispose();
        if (Gateway is not null)
        {
            await Gateway.DisposeAsync();
        }
        if (Redis is not null)
        {
            await Redis.DisposeAsync();
        }
    }

    /// <summary>A fresh browser context (no cookies) at a desktop width, its page's address the gateway.</summary>
    public async Task<IPage> NewPageAsync(int width = 1280, int height = 900)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = Gateway.BaseAddress.ToString().TrimEnd('/'),
            ViewportSize = new ViewportSize { Width = width, Height = height },
        });
        context.SetDefaultTimeout(15_000);
        return await context.NewPageAsync();
    }

    /// <summary>A page signed in to the console, on the Overview.</summary>
    public async Task<IPage> SignedInPageAsync(int width = 1280, int height = 900)
    {
        var page = await NewPageAsync(width, height);
        await page.GotoAsync("/ui/signin");
        await page.GetByLabel("Master key").FillAsync(MasterKey);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Overview", Level = 1 })).ToBeVisibleAsync();
        return page;
    }

    /// <summary>A screenshot of the whole page under the test output; with ONYX_UPDATE_SCREENSHOTS=1 also into docs/images/ui.</summary>
    public static async Task ScreenshotAsync(IPage page, string name)
    {
        var path = Path.Combine(ScreenshotDirectory, name + ".png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true });
        if (Environment.GetEnvironmentVariable("ONYX_UPDATE_SCREENSHOTS") == "1")
        {
            var docs = Path.Combine(GatewayHost.RepositoryRoot, "docs", "images", "ui");
            Directory.CreateDirectory(docs);
            File.Copy(path, Path.Combine(docs, name + ".png"), overwrite: true);
        }
    }

    /// <summary>Debian's chromium from PATH: browser downloads are not possible here, so Playwright drives the system one.</summary>
    private static string FindChromium()
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var directory in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            foreach (var name in new[] { "chromium", "chromium-browser" })
            {
                var candidate = Path.Combine(directory, name);
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }
        }
        throw new InvalidOperationException(
            "The admin console's browser tests need chromium on PATH (Debian/Ubuntu: 'apt-get install chromium'); ./test.sh installs it when run as root.");
    }
}

/// <summary>The console's test classes share one gateway and one browser, and run one after another.</summary>
[CollectionDefinition(Name)]
public sealed class ConsoleCollection : ICollectionFixture<ConsoleFixture>
{
    public const string Name = "Admin console";
}
