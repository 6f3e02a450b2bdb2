using System.Net;
using System.Runtime.ExceptionServices;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Onyx.Gateway.Tests.Fakes;

namespace Onyx.Gateway.Tests.TestHost;

/// <summary>
/// The real gateway (its own Program) on a loopback Kestrel port, configured with the repository's
/// litellm-config.yaml, with Together AI pointed at a fake OpenAI-compatible provider and
/// <c>http://ollama:11434</c> resolved to a fake Ollama — the same way Aspire's service discovery does it.
/// </summary>
public sealed class GatewayHost : IAsyncDisposable
{
    public const string TogetherKey = "sk-together-test-3f9a1c";

    public const string SpillDirectoryKey = "Onyx:Audit:SpillDirectory";

    private readonly WebApplicationFactory<GatewayAssembly> _factory;
    private readonly string? _ownSpillDirectory;

    private GatewayHost(FakeOpenAiProvider primary, FakeOllamaProvider fallback, WebApplicationFactory<GatewayAssembly> factory, LogCapture logs, string? ownSpillDirectory)
    {
        _ownSpillDirectory = ownSpillDirectory;
        Primary = primary;
        Fallback = fallback;
        _factory = factory;
        Logs = logs;
    }

    public FakeOpenAiProvider Primary { get; }

    public FakeOllamaProvider Fallback { get; }

    public LogCapture Logs { get; }

    public Uri BaseAddress { get; private set; } = null!;

    public IServiceProvider Services => _factory.Services;

    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    /// <param name="settings">Configuration on top of the defaults (e.g. <c>Onyx:Routing:FirstTokenTimeout</c>).</param>
    /// <param name="services">Replacements of the app's services (e.g. a fake <see cref="TimeProvider"/>).</param>
    /// <param name="url">Where Kestrel listens (loopback on a free port unless a test needs otherwise).</param>
    public static async Task<GatewayHost> StartAsync(Dictionary<string, string?>? settings = null, Action<IServiceCollection>? services = null,
        string url = "http://127.0.0.1:0")
    {
        var primary = await FakeOpenAiProvider.StartAsync(new FakeBehavior { Models = ["deepseek-ai/DeepSeek-V3"] });
        var fallback = await FakeOllamaProvider.StartAsync(new FakeBehavior { Models = ["mistral:7b-instruct"] });
        var logs = new LogCapture();
        var all = new Dictionary<string, string?>
        {
            ["LITELLM_CONFIG_PATH"] = Path.Combine(RepositoryRoot, "litellm-config.yaml"),
            ["TOGETHER_API_KEY"] = TogetherKey,
            ["Onyx:Providers:together_ai:ApiBase"] = primary.BaseUrl.ToString(),
            ["services:ollama:http:0"] = fallback.BaseUrl.ToString(),
            // Far above what a healthy call takes even while the whole suite loads both cores: with 1 s, the first
            // call of a fresh gateway now and then ran out of it and fell over to the fallback. The tests of the limit
            // itself set a short one (Routing/FirstTokenLimitTests).
            ["Onyx:Routing:FirstTokenTimeout"] = "00:00:10",
            ["Onyx:CallLog:Stdout"] = "false",
            // Each gateway its own audit spill directory, so no test replays another's leftover records.
            [SpillDirectoryKey] = Path.Combine(Path.GetTempPath(), "onyx-tests", Guid.NewGuid().ToString("N")),
        };
        var ownSpillDirectory = all[SpillDirectoryKey];
        foreach (var (key, value) in settings ?? [])
        {
            all[key] = value;
        }
        ownSpillDirectory = all[SpillDirectoryKey] == ownSpillDirectory ? ownSpillDirectory : null;

        var factory = new WebApplicationFactory<GatewayAssembly>().WithWebHostBuilder(web =>
        {
            foreach (var (key, value) in all)
            {
                web.UseSetting(key, value);
            }
            web.UseUrls(url);
            web.ConfigureLogging(logging => logging.AddProvider(logs));
            if (services is not null)
            {
                web.ConfigureTestServices(services);
            }
        });
        factory.UseKestrel();
        try
        {
            factory.StartServer();
        }
        catch (Exception error)
        {
            // A gateway that refuses to start (bad config) must not leave its fakes running — and the reason it
            // refused is what the caller must see, not a later failure of tearing the half-started host down.
            try
            {
                await factory.DisposeAsync();
            }
            catch (ObjectDisposedException)
            {
            }
            await primary.DisposeAsync();
            await fallback.DisposeAsync();
            DeleteDirectory(ownSpillDirectory);
            // WebApplicationFactory races the app when it fails to start: the app's own thread disposes the host
            // (Run's finally) while the factory may still be reading its services, and the factory then throws
            // ObjectDisposedException instead of the app's exception (seen once in about ten full test runs). The
            // host logged why it failed ("Hosting failed to start", event 11): that is the reason to throw.
            if (error is ObjectDisposedException
                && logs.Records.LastOrDefault(r => r.EventId == 11 && r.Category == "Microsoft.Extensions.Hosting.Internal.Host")?.Exception is { } reason)
            {
                ExceptionDispatchInfo.Throw(reason);
            }
            throw;
        }
        var host = new GatewayHost(primary, fallback, factory, logs, ownSpillDirectory);
        var addresses = factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        host.BaseAddress = new Uri(addresses.First().Replace("[::]", "127.0.0.1", StringComparison.Ordinal).Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal)
            .Replace("localhost", "127.0.0.1", StringComparison.Ordinal));
        return host;
    }

    /// <summary>A client with no connection reuse surprises: a fresh handler per host; sends <paramref name="key"/> if given.</summary>
    public HttpClient CreateClient(string? key = null)
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
        if (key is not null)
        {
            client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        }
        return client;
    }

    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    public static string ChatBody(string model = "manus-primary", bool stream = false, string extra = "") =>
        $$"""{"model":"{{model}}","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"Say hello"}]{{extra}}}""";

    public async ValueTask DisposeAsync()
    {
        await _factory.DisposeAsync();
        await Primary.DisposeAsync();
        await Fallback.DisposeAsync();
        DeleteDirectory(_ownSpillDirectory);
    }

    private static void DeleteDirectory(string? path)
    {
        if (path is not null && Directory.Exists(path))
        {
            Directory.Delete(path, recursive: true);
        }
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Onyx.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException("Onyx.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>Parses an SSE response body the way a client would: the data of each event, in order.</summary>
public static class Sse
{
    public static List<string> Events(string body) => body
        .Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
        .Where(e => !e.StartsWith(':'))
        .Select(e => e.StartsWith("data: ", StringComparison.Ordinal) ? e["data: ".Length..] : throw new FormatException($"Not an SSE data event: '{e}'"))
        .ToList();

    public static string Content(IEnumerable<string> events) => string.Concat(events
        .Where(e => e != "[DONE]")
        .Select(e => JsonNode.Parse(e)!["choices"] is JsonArray { Count: > 0 } choices ? (string?)choices[0]!["delta"]?["content"] : null));
}
