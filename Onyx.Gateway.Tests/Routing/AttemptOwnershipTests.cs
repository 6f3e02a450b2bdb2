using System.Net;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.DependencyInjection;
using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;
using Onyx.Gateway.Resilience;
using Onyx.Gateway.Routing;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Routing;

/// <summary>
/// An attempt's breaker permit and slot come back however the request ends: the client leaving at each await (a
/// hedge's wait, the queue for a slot, the first token, mid-answer) or an exception no adapter foresaw. Afterwards
/// every breaker is closed or has its probe free, every slot is free, and each request left one call-log record and
/// one audit record.
/// </summary>
public sealed class AttemptOwnershipTests
{
    private const string Primary = "together_ai/deepseek-ai/DeepSeek-V3";
    private const string Fallback = "ollama/mistral:7b-instruct";

    [Fact]
    public async Task TheClientLeavingWhileThePrimaryThinksFreesItsProbeAndSlot()
    {
        await using var test = await OwnershipGateway.StartAsync();
        test.HalfOpen(Primary);
        test.Gateway.Primary.Fault = FakeFault.HangBeforeHeaders;

        await test.AbandonAsync("first-token", () => test.Gateway.Primary.WaitForCallsAsync(1, TimeSpan.FromSeconds(10)));

        test.AssertProbeFree(Primary);
        await test.AssertNothingHeldAsync("first-token");
    }

    [Fact]
    public async Task TheClientLeavingDuringAHedgeFreesBothAttempts()
    {
        await using var test = await OwnershipGateway.StartAsync(new() { ["model_list:0:litellm_params:hedge_after_ms"] = "100" });
        test.HalfOpen(Primary);
        test.HalfOpen(Fallback);
        test.Gateway.Primary.Fault = FakeFault.HangBeforeHeaders;
        test.Gateway.Fallback.Fault = FakeFault.HangBeforeHeaders;

        await test.AbandonAsync("hedge", async () =>
        {
            await test.Gateway.Primary.WaitForCallsAsync(1, TimeSpan.FromSeconds(10));
            await test.Gateway.Fallback.WaitForCallsAsync(1, TimeSpan.FromSeconds(10));
        });

        test.AssertProbeFree(Primary);
        test.AssertProbeFree(Fallback);
        await test.AssertNothingHeldAsync("hedge");
    }

    [Fact]
    public async Task TheClientLeavingWhileQueuedForASlotFreesTheProbeItHeld()
    {
        await using var test = await OwnershipGateway.StartAsync(new() { ["Logging:LogLevel:Onyx.Gateway.Resilience.DeploymentSlots"] = "Debug" });
        test.Gateway.Primary.Update(b => b with { Tokens = Enumerable.Repeat(" word", 20).ToList(), TokenDelay = TimeSpan.FromMilliseconds(100) });
        using var client = test.Gateway.CreateClient();
        // The first request holds the primary's one slot while it streams.
        using var holding = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody(stream: true)) };
        holding.Headers.Add("x-request-id", "holding");
        using var held = await client.SendAsync(holding, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, held.StatusCode);
        test.HalfOpen(Primary);

        // The second takes the half-open breaker's probe, then waits for the slot — and its client leaves.
        await test.AbandonAsync("queued", () => test.Gateway.Logs.WaitForAsync(r => r.EventId == 2101, TimeSpan.FromSeconds(10)));

        test.AssertProbeFree(Primary);
        Assert.Equal(StreamOutcome.Whole, AnswerIntegrity.Check(await held.Content.ReadAsStringAsync(), string.Concat(Enumerable.Repeat(" word", 20))));
        await test.AssertNothingHeldAsync("queued", "holding");
    }

    [Fact]
    public async Task TheClientLeavingMidAnswerFreesTheSlotAndCancelsTheUpstream()
    {
        await using var test = await OwnershipGateway.StartAsync();
        test.Gateway.Primary.Update(b => b with { Tokens = Enumerable.Repeat(" word", 50).ToList(), TokenDelay = TimeSpan.FromMilliseconds(100) });
        using var client = test.Gateway.CreateClient();
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody(stream: true)) })
        {
            request.Headers.Add("x-request-id", "mid-stream");
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            var stream = await response.Content.ReadAsStreamAsync();
            Assert.True(await stream.ReadAsync(new byte[64]) > 0);
        }

        await test.Gateway.Primary.WaitForCancelledAsync(1, TimeSpan.FromSeconds(10));
        await test.WaitForCallAsync("mid-stream");
        Assert.Equal(CircuitState.Closed, test.Breaker(Primary).State);
        await test.AssertNothingHeldAsync("mid-stream");
    }

    [Fact]
    public async Task AnExceptionNoAdapterForesawIsAFailureAndFreesEverything()
    {
        await using var test = await OwnershipGateway.StartAsync(services: s =>
        {
            s.RemoveAll<IChatProvider>();
            s.AddSingleton<IChatProvider>(p => new Unforeseen(new OpenAiCompatibleProvider(p.GetRequiredService<UpstreamClients>())));
            s.AddSingleton<IChatProvider>(p => new OllamaProvider(p.GetRequiredService<UpstreamClients>(), p.GetRequiredService<TimeProvider>()));
        });
        test.HalfOpen(Primary);
        using var client = test.Gateway.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody(stream: true)) };
        request.Headers.Add("x-request-id", "unforeseen");

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("true", Headers.Get(response, "x-onyx-fallback"));
        Assert.Equal(StreamOutcome.Whole, AnswerIntegrity.Check(await response.Content.ReadAsStringAsync(), test.Gateway.Fallback.ExpectedText));
        // The probe got its verdict (a failure: open again), rather than being held for ever.
        Assert.Equal(CircuitState.Open, test.Breaker(Primary).State);
        await test.AssertNothingHeldAsync("unforeseen");
    }

    /// <summary>An adapter whose stream throws what no adapter should: a bug, surfacing before the first token.</summary>
    private sealed class Unforeseen(IChatProvider inner) : IChatProvider
    {
        public ProviderProtocol Protocol => inner.Protocol;

        public string? CannotServe(Deployment deployment, ChatRequest request) => inner.CannotServe(deployment, request);

        public Task<CompletionResult> CompleteAsync(Deployment deployment, ChatRequest request, AttemptContext context, CancellationToken cancellationToken) =>
            inner.CompleteAsync(deployment, request, context, cancellationToken);

        public async IAsyncEnumerable<StreamChunk> StreamAsync(Deployment deployment, ChatRequest request, AttemptContext context,
            [EnumeratorCancellation] CancellationToken cancellationToken)
        {
            await Task.Yield();
            throw new FormatException("The input string '12.0' was not in a correct format.");
#pragma warning disable CS0162 // An iterator needs a yield to be one.
            yield break;
#pragma warning restore CS0162
        }
    }

    /// <summary>A gateway whose primary allows one call at a time, with its own audit file to count records in.</summary>
    private sealed class OwnershipGateway : IAsyncDisposable
    {
        private readonly string _spill;
        private bool _stopped;

        private OwnershipGateway(GatewayHost gateway, string spill)
        {
            Gateway = gateway;
            _spill = spill;
        }

        public GatewayHost Gateway { get; }

        public static async Task<OwnershipGateway> StartAsync(Dictionary<string, string?>? settings = null, Action<IServiceCollection>? services = null)
        {
            var spill = Directory.CreateTempSubdirectory("onyx-ownership-").FullName;
            var all = new Dictionary<string, string?>
            {
                ["model_list:0:litellm_params:max_parallel_requests"] = "1",
                ["model_list:1:litellm_params:max_parallel_requests"] = "1",
                [GatewayHost.SpillDirectoryKey] = spill,
            };
            foreach (var (key, value) in settings ?? [])
            {
                all[key] = value;
            }
            return new OwnershipGateway(await GatewayHost.StartAsync(all, services), spill);
        }

        public CircuitBreaker Breaker(string deployment) =>
            Gateway.Services.GetRequiredService<CircuitBreakerRegistry>().All.Single(b => b.DeploymentId == deployment);

        /// <summary>As after a cooldown: the breaker lets exactly one probe through.</summary>
        public void HalfOpen(string deployment)
        {
            Breaker(deployment).FollowOpen("test-open", TimeSpan.Zero, "test");
            Assert.Equal(CircuitState.HalfOpen, Breaker(deployment).State);
        }

        public void AssertProbeFree(string deployment)
        {
            var breaker = Breaker(deployment);
            Assert.True(breaker.TryAcquire(out var permit), $"{deployment}: no call may pass ({breaker.State})");
            breaker.OnAbandoned(permit);
        }

        /// <summary>Sends a streamed request as <paramref name="requestId"/> and leaves once <paramref name="until"/> completes.</summary>
        public async Task AbandonAsync(string requestId, Func<Task> until)
        {
            using var client = Gateway.CreateClient();
            using var leave = new CancellationTokenSource();
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody(stream: true)) };
            request.Headers.Add("x-request-id", requestId);
            var sending = client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, leave.Token);
            await until();
            await leave.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sending);
            await WaitForCallAsync(requestId);
        }

        public Task WaitForCallAsync(string requestId) =>
            Gateway.Logs.WaitForAsync(r => r.EventId == 3001 && (string?)r["RequestId"] == requestId, TimeSpan.FromSeconds(10));

        /// <summary>Every slot is free; then, with the gateway stopped, each request has one call-log and one audit record.</summary>
        public async Task AssertNothingHeldAsync(params string[] requestIds)
        {
            var routing = Gateway.Services.GetRequiredService<RoutingTable>();
            var slots = Gateway.Services.GetRequiredService<DeploymentSlots>();
            foreach (var deployment in routing.Deployments)
            {
                Assert.Equal(1, slots.FreeSlots(deployment));
            }
            await StopAsync();
            var calls = Gateway.Logs.Records.Where(r => r.EventId == 3001).Select(r => (string?)r["RequestId"]).ToList();
            var audit = Directory.GetFiles(_spill, "*.jsonl").SelectMany(File.ReadAllLines).ToList();
            foreach (var id in requestIds)
            {
                Assert.Single(calls, c => c == id);
                Assert.Single(audit, line => line.Contains($"\"request_id\":\"{id}\"", StringComparison.Ordinal));
            }
        }

        private async Task StopAsync()
        {
            if (!_stopped)
            {
                _stopped = true;
                await Gateway.DisposeAsync();
            }
        }

        public async ValueTask DisposeAsync()
        {
            await StopAsync();
            Directory.Delete(_spill, recursive: true);
        }
    }
}
