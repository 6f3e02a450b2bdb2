using System.IO.Compression;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Onyx.Gateway.Auth;
using Onyx.Gateway.Telemetry;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Telemetry;

/// <summary>
/// <c>failure_callback: ["sentry"]</c>: with <c>SENTRY_DSN</c> pointing at a fake Sentry on loopback, a failed call's
/// event arrives through the Sentry SDK — and holds no prompt text and no key.
/// </summary>
public sealed class SentryReportingTests : IAsyncLifetime
{
    private const string MasterKey = "sk-master-sentry-4b7c21";
    private const string Prompt = "confidential-prompt-5519";

    private readonly FakeSentry _sentry = new();
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        await _sentry.StartAsync();
        _gateway = await GatewayHost.StartAsync(new()
        {
            ["LITELLM_MASTER_KEY"] = MasterKey,
            [SentryReporting.DsnKey] = $"http://0123456789abcdef@127.0.0.1:{_sentry.Port}/42",
        }, services => services.AddSingleton<IKeyStore, FailingKeyStore>());
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _sentry.DisposeAsync();
    }

    [Fact]
    public async Task AFailedCallIsReportedWithoutPromptOrKeys()
    {
        _gateway.Primary.Fault = FakeFault.Status(500);
        _gateway.Fallback.Fault = FakeFault.Status(500);
        using var client = _gateway.CreateClient(MasterKey);
        using var response = await client.PostAsync("/v1/chat/completions",
            GatewayHost.Json($$"""{"model":"manus-primary","messages":[{"role":"user","content":"{{Prompt}}"}]}"""));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);

        var envelope = await _sentry.WaitForAsync(e => e.Contains("llm_call_failed", StringComparison.Ordinal), TimeSpan.FromSeconds(15));
        Assert.Contains("manus-primary", envelope, StringComparison.Ordinal);
        Assert.Contains("failed: service_unavailable", envelope, StringComparison.Ordinal);
        Assert.Contains("\"onyx.deployment\":\"ollama/mistral:7b-instruct\"", envelope, StringComparison.Ordinal);
        Assert.Contains("\"onyx.status\":\"503\"", envelope, StringComparison.Ordinal);
        // Why it failed: each deployment and its status, nothing more.
        Assert.Contains("http_500", envelope, StringComparison.Ordinal);

        foreach (var sent in _sentry.Envelopes)
        {
            Assert.DoesNotContain(Prompt, sent, StringComparison.Ordinal);
            Assert.DoesNotContain(MasterKey, sent, StringComparison.Ordinal);
            Assert.DoesNotContain(GatewayHost.TogetherKey, sent, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task AnUnhandledExceptionIsReportedScrubbed()
    {
        using var client = _gateway.CreateClient(MasterKey);
        using var generated = await client.PostAsync("/key/generate", GatewayHost.Json("{}"));
        var key = (string)System.Text.Json.Nodes.JsonNode.Parse(await generated.Content.ReadAsStringAsync())!["key"]!;
        using var response = await client.GetAsync("/key/list");
        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);

        var envelope = await _sentry.WaitForAsync(e => e.Contains(FailingKeyStore.Message, StringComparison.Ordinal), TimeSpan.FromSeconds(15));
        Assert.Contains("InvalidOperationException", envelope, StringComparison.Ordinal);
        Assert.Contains("[Filtered]", envelope, StringComparison.Ordinal);
        Assert.DoesNotContain(MasterKey, envelope, StringComparison.Ordinal);
        Assert.DoesNotContain(key, envelope, StringComparison.Ordinal);
    }

    /// <summary>A key store whose listing throws an exception the gateway does not expect (its message names a key).</summary>
    private sealed class FailingKeyStore : IKeyStore
    {
        public const string Message = "key store exploded";

        private readonly InMemoryKeyStore _keys = new();

        public Task<ApiKeyRecord?> FindAsync(string hash, CancellationToken cancellationToken) => _keys.FindAsync(hash, cancellationToken);

        public Task SaveAsync(ApiKeyRecord record, CancellationToken cancellationToken) => _keys.SaveAsync(record, cancellationToken);

        public Task<bool> DeleteAsync(string hash, CancellationToken cancellationToken) => _keys.DeleteAsync(hash, cancellationToken);

        public Task SubscribeAsync(Action<string> changed) => _keys.SubscribeAsync(changed);

        public Task<IReadOnlyList<ApiKeyRecord>> ListAsync(CancellationToken cancellationToken) =>
            throw new InvalidOperationException($"{Message} while listing the keys, {MasterKey} among them");
    }

    [Fact]
    public void TheFilterRemovesKeysAndCredentialsHeaders()
    {
        var sentryEvent = new Sentry.SentryEvent
        {
            Message = new Sentry.SentryMessage { Formatted = $"failed with Authorization: Bearer {MasterKey} and key {GatewayHost.TogetherKey}" },
        };
        sentryEvent.Request.Headers["Authorization"] = "Bearer " + MasterKey;
        sentryEvent.Request.Data = Prompt;
        sentryEvent.Request.QueryString = "key=" + MasterKey;

        var scrubbed = SentryReporting.Scrub(sentryEvent);

        Assert.Equal("failed with Authorization: [Filtered] and key [Filtered]", scrubbed.Message!.Formatted);
        Assert.Equal("[Filtered]", scrubbed.Request.Headers["Authorization"]);
        Assert.Null(scrubbed.Request.Data);
        Assert.Equal("[Filtered]", scrubbed.Request.QueryString);
    }

    /// <summary>Sentry's envelope endpoint on loopback: keeps each envelope it is sent, as text.</summary>
    private sealed class FakeSentry : IAsyncDisposable
    {
        private readonly List<string> _envelopes = [];
        private readonly Signal _arrived = new();
        private WebApplication? _app;

        public int Port { get; private set; }

        public IReadOnlyList<string> Envelopes
        {
            get
            {
                lock (_envelopes)
                {
                    return [.. _envelopes];
                }
            }
        }

        public async Task StartAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            _app = builder.Build();
            _app.MapPost("/api/{project}/envelope/", async (HttpContext context) =>
            {
                Stream body = context.Request.Body;
                if (context.Request.Headers.ContentEncoding.ToString().Contains("gzip", StringComparison.OrdinalIgnoreCase))
                {
                    body = new GZipStream(body, CompressionMode.Decompress);
                }
                using var reader = new StreamReader(body, Encoding.UTF8);
                var text = await reader.ReadToEndAsync();
                lock (_envelopes)
                {
                    _envelopes.Add(text);
                }
                _arrived.Pulse();
                return Results.Ok();
            });
            await _app.StartAsync();
            var address = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            Port = new Uri(address).Port;
        }

        /// <summary>Waits (on each arrival, not by polling) for an envelope matching <paramref name="match"/>.</summary>
        public async Task<string> WaitForAsync(Func<string, bool> match, TimeSpan timeout) =>
            (await _arrived.WaitForAsync(() => Envelopes.FirstOrDefault(match), found => found is not null, timeout, "a matching Sentry envelope"))!;

        public async ValueTask DisposeAsync()
        {
            if (_app is not null)
            {
                await _app.DisposeAsync();
            }
        }
    }
}
