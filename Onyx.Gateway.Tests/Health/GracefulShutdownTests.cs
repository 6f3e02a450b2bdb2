using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Onyx.Gateway.Tests.Fakes;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Health;

/// <summary>
/// SIGTERM as a client and an operator see it: <c>/health</c> turns 503 at once, new requests are refused and never
/// reach a provider, calls in flight finish, those that outlive the drain limit end visibly, and the process exits.
/// In-process tests stop the gateway with <see cref="IHostApplicationLifetime.StopApplication"/>, which is what the
/// host's SIGTERM handler calls; one test sends a real SIGTERM to the gateway in a process of its own.
/// </summary>
public sealed class GracefulShutdownTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    /// <summary>Ten tokens 250 ms apart: a call that is still running well after the test has started the shutdown.</summary>
    private static readonly FakeBehavior Paced = new()
    {
        Models = ["deepseek-ai/DeepSeek-V3"],
        Tokens = ["One", " two", " three", " four", " five", " six", " seven", " eight", " nine", " ten"],
        TokenDelay = TimeSpan.FromMilliseconds(250),
    };

    private GatewayHost? _gateway;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_gateway is not null)
        {
            await _gateway.DisposeAsync();
        }
    }

    [Fact]
    public async Task CallsInFlightFinishWhileHealthSaysDrainingAndNewRequestsAreRefused()
    {
        var serverStop = new ServerStopGate();
        var gateway = await StartAsync(services: services => services.AddHostedService(_ => serverStop));
        gateway.Primary.Behavior = Paced;
        var lifetime = gateway.Services.GetRequiredService<IHostApplicationLifetime>();
        var stopped = Fired(lifetime.ApplicationStopped);

        using var streamClient = gateway.CreateClient();
        using var streamRequest = ChatRequest(stream: true);
        using var stream = await streamClient.SendAsync(streamRequest, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await stream.Content.ReadAsStreamAsync());
        var first = await NextEventAsync(reader);
        using var completionClient = gateway.CreateClient();
        var completion = completionClient.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        await gateway.Primary.WaitForCallsAsync(2, Timeout);

        lifetime.StopApplication();

        var started = await gateway.Logs.WaitForAsync(r => r.EventId == 7001, Timeout);
        Assert.Equal(2, started["InFlight"]);
        // Until the server's stop runs, a keep-alive connection can still bring a request in.
        using var probe = gateway.CreateClient();
        using var health = await probe.GetAsync("/health");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
        var report = JsonNode.Parse(await health.Content.ReadAsStringAsync())!;
        Assert.Equal("Unhealthy", (string?)report["status"]);
        Assert.Equal("Unhealthy", (string?)report["checks"]!["shutdown"]!["status"]);
        Assert.StartsWith("Draining", (string?)report["checks"]!["shutdown"]!["description"], StringComparison.Ordinal);
        using var alive = await probe.GetAsync("/alive");
        Assert.Equal(HttpStatusCode.OK, alive.StatusCode);
        using var refused = await probe.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
        await AssertShuttingDownAsync(refused);
        Assert.Equal(2, gateway.Primary.Calls);

        serverStop.Release();

        var events = Sse.Events(first + await reader.ReadToEndAsync().WaitAsync(Timeout));
        Assert.Equal(Paced.Text, Sse.Content(events));
        Assert.Equal("[DONE]", events[^1]);
        using var answer = await completion.WaitAsync(Timeout);
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.Equal(Paced.Text, (string?)JsonNode.Parse(await answer.Content.ReadAsStringAsync())!["choices"]![0]!["message"]!["content"]);
        await stopped.WaitAsync(Timeout);
        var ended = Assert.Single(gateway.Logs.Records, r => r.EventId == 7002);
        Assert.Equal(2, ended["Finished"]);
        Assert.Equal(0, ended["Ended"]);
        Assert.Equal(0, ended["Unfinished"]);
        Assert.Equal(2, gateway.Primary.Calls);
        Assert.Equal(0, gateway.Primary.Cancelled);
    }

    [Fact]
    public async Task CallsThatOutliveTheDrainLimitEndWithAnErrorEventOrA503()
    {
        var time = TestClock.Create();
        var gateway = await StartAsync(new() { ["Onyx:Shutdown:DrainTimeout"] = "00:00:10" }, services => services.AddSingleton<TimeProvider>(time));
        gateway.Primary.FailNext(1, FakeFault.StallAfter(2));
        gateway.Primary.FailNext(1, FakeFault.HangBeforeHeaders);
        var lifetime = gateway.Services.GetRequiredService<IHostApplicationLifetime>();
        var stopped = Fired(lifetime.ApplicationStopped);

        using var streamClient = gateway.CreateClient();
        using var streamRequest = ChatRequest(stream: true);
        using var stream = await streamClient.SendAsync(streamRequest, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await stream.Content.ReadAsStreamAsync());
        var received = await NextEventAsync(reader) + await NextEventAsync(reader);
        using var completionClient = gateway.CreateClient();
        var completion = completionClient.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
        await gateway.Primary.WaitForCallsAsync(2, Timeout);

        lifetime.StopApplication();
        await gateway.Logs.WaitForAsync(r => r.EventId == 7001, Timeout);
        time.Advance(TimeSpan.FromSeconds(10));

        var events = Sse.Events(received + await reader.ReadToEndAsync().WaitAsync(Timeout));
        Assert.Equal(string.Concat(FakeBehavior.DefaultTokens.Take(2)), Sse.Content(events.SkipLast(1)));
        Assert.DoesNotContain("[DONE]", events);
        var error = JsonNode.Parse(events[^1])!["error"]!;
        Assert.Equal("stream_interrupted", (string?)error["code"]);
        Assert.Equal("service_unavailable", (string?)error["type"]);
        Assert.Contains("shutting down", (string?)error["message"], StringComparison.Ordinal);
        using var answer = await completion.WaitAsync(Timeout);
        var refusal = await AssertShuttingDownAsync(answer);
        Assert.Contains("drain limit", (string?)refusal["message"], StringComparison.Ordinal);
        await gateway.Primary.WaitForCancelledAsync(2, Timeout);
        await stopped.WaitAsync(Timeout);
        var ended = Assert.Single(gateway.Logs.Records, r => r.EventId == 7002);
        Assert.Equal(0, ended["Finished"]);
        Assert.Equal(2, ended["Ended"]);
        Assert.Equal(0, ended["Unfinished"]);
    }

    [Fact]
    public async Task AnIdleGatewayLogsTheDrainAndStops()
    {
        var gateway = await StartAsync();
        var lifetime = gateway.Services.GetRequiredService<IHostApplicationLifetime>();
        var stopped = Fired(lifetime.ApplicationStopped);

        lifetime.StopApplication();

        await stopped.WaitAsync(Timeout);
        Assert.Equal(0, Assert.Single(gateway.Logs.Records, r => r.EventId == 7001)["InFlight"]);
        var ended = Assert.Single(gateway.Logs.Records, r => r.EventId == 7002);
        Assert.Equal(0, ended["Finished"]);
        Assert.Equal(0, ended["Ended"]);
    }

    [Fact]
    public async Task TheDrainTimeoutSetsHowLongTheHostWaitsForTheServer()
    {
        var gateway = await StartAsync(new() { ["Onyx:Shutdown:DrainTimeout"] = "00:02:00" });

        // Kestrel aborts the connections still open when the host's shutdown timeout runs out: that must come after
        // the drain limit, so the calls ended at the limit can still say so.
        Assert.Equal(TimeSpan.FromSeconds(125), gateway.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout);
    }

    [Theory]
    [InlineData("-00:00:01")]
    [InlineData("02:00:00")]
    public async Task RefusesToStartWithADrainTimeoutOutOfRangeAndNamesTheKey(string drainTimeout)
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAsync(new() { ["Onyx:Shutdown:DrainTimeout"] = drainTimeout }));

        while (error is AggregateException or TargetInvocationException && error.InnerException is not null)
        {
            error = error.InnerException;
        }
        var validation = Assert.IsType<OptionsValidationException>(error);
        Assert.Contains("Onyx:Shutdown:DrainTimeout must be between 00:00:00 and 01:00:00", validation.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SigtermDrainsTheStreamInFlightAndTheProcessExits()
    {
        await using var primary = await FakeOpenAiProvider.StartAsync(Paced);
        await using var gateway = await GatewayProcess.StartAsync(primary.BaseUrl, Timeout);
        using var client = new HttpClient { BaseAddress = gateway.BaseAddress, Timeout = Timeout };

        using var streamRequest = ChatRequest(stream: true);
        using var stream = await client.SendAsync(streamRequest, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await stream.Content.ReadAsStreamAsync());
        var first = await NextEventAsync(reader);

        gateway.Terminate();

        await gateway.WaitForLineAsync("[7001]", Timeout);
        // Refused by the gateway if its server has not stopped yet, else by the kernel: either way no provider call.
        using var late = new HttpClient { BaseAddress = gateway.BaseAddress, Timeout = Timeout };
        try
        {
            using var refused = await late.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody(stream: true)));
            await AssertShuttingDownAsync(refused);
        }
        catch (HttpRequestException)
        {
            // Connection refused (or reset, for one caught in the listen backlog as the listener closed).
        }
        var events = Sse.Events(first + await reader.ReadToEndAsync().WaitAsync(Timeout));
        Assert.Equal(Paced.Text, Sse.Content(events));
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal(0, await gateway.WaitForExitAsync(Timeout));
        Assert.Contains(gateway.Lines, line => line.Contains("requests in flight: 1, drain limit: 00:00:30", StringComparison.Ordinal));
        Assert.Contains(gateway.Lines, line => line.Contains("finished 1, ended at the drain limit 0, still running at exit 0", StringComparison.Ordinal));
        Assert.Equal(1, primary.Calls);
        // The call's JSON line reached stdout before the process exited: the call log's batching lost nothing.
        var requestId = Assert.Single(stream.Headers.GetValues("x-request-id"));
        var callLine = Assert.Single(gateway.Lines, line => line.Contains("\"event\":\"llm_call\"", StringComparison.Ordinal));
        var call = JsonNode.Parse(callLine)!;
        Assert.Equal(requestId, (string?)call["request_id"]);
        Assert.True((bool)call["success"]!);
        Assert.Equal(Paced.Tokens.Count, (int)call["tokens"]!["completion"]!);
    }

    private async Task<GatewayHost> StartAsync(Dictionary<string, string?>? settings = null, Action<IServiceCollection>? services = null) =>
        _gateway = await GatewayHost.StartAsync(settings, services);

    private static HttpRequestMessage ChatRequest(bool stream) =>
        new(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody(stream: stream)) };

    /// <summary>Reads one SSE event (its <c>data:</c> line and the blank line after it), as the client receives it.</summary>
    private static async Task<string> NextEventAsync(StreamReader reader)
    {
        var data = await reader.ReadLineAsync().WaitAsync(Timeout);
        var blank = await reader.ReadLineAsync().WaitAsync(Timeout);
        Assert.StartsWith("data: ", data, StringComparison.Ordinal);
        Assert.Equal("", blank);
        return data + "\n\n";
    }

    private static async Task<JsonNode> AssertShuttingDownAsync(HttpResponseMessage response)
    {
        var error = await OpenAiResponses.ErrorOf(response, HttpStatusCode.ServiceUnavailable);
        Assert.Equal("shutting_down", (string?)error["code"]);
        Assert.Equal("service_unavailable", (string?)error["type"]);
        Assert.StartsWith("The gateway is shutting down", (string?)error["message"], StringComparison.Ordinal);
        Assert.Equal(TimeSpan.FromSeconds(1), response.Headers.RetryAfter?.Delta);
        Assert.True(response.Headers.ConnectionClose);
        return error;
    }

    private static Task Fired(CancellationToken token)
    {
        var fired = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        token.Register(() => fired.TrySetResult());
        return fired.Task;
    }

    /// <summary>
    /// Holds the host's stop before it stops the server (as a slow <see cref="IHostedLifecycleService.StoppingAsync"/>
    /// would): the window in which a keep-alive connection can still bring a request to a gateway that is draining.
    /// </summary>
    private sealed class ServerStopGate : IHostedLifecycleService
    {
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Release() => _released.TrySetResult();

        public Task StoppingAsync(CancellationToken cancellationToken) => _released.Task.WaitAsync(cancellationToken);

        public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    /// <summary>The gateway's own build in a process of its own, as an orchestrator runs it, with its console log captured.</summary>
    private sealed class GatewayProcess : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly ConcurrentQueue<string> _lines = new();
        private readonly List<(string Text, TaskCompletionSource Seen)> _waiters = [];
        private readonly Lock _gate = new();

        private GatewayProcess(Process process) => _process = process;

        /// <summary>Where the gateway listens: the port Kestrel chose, read from its "Now listening on" line.</summary>
        public Uri BaseAddress { get; private set; } = null!;

        public IReadOnlyCollection<string> Lines => _lines.ToArray();

        public static async Task<GatewayProcess> StartAsync(Uri primary, TimeSpan timeout)
        {
            var configuration = typeof(GracefulShutdownTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Release";
            var dll = Path.Combine(GatewayHost.RepositoryRoot, "Onyx.Gateway", "bin", configuration, "net10.0", "Onyx.Gateway.dll");
            Assert.True(File.Exists(dll), $"{dll} is missing: the test project's build builds it.");
            var start = new ProcessStartInfo("dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
                WorkingDirectory = Path.GetDirectoryName(dll)!,
            };
            start.ArgumentList.Add(dll);
            // Port 0: Kestrel binds a free port itself. A port picked free beforehand could be taken by another test
            // before the gateway binds it (it happened once in CI: "address already in use").
            start.Environment["ASPNETCORE_URLS"] = "http://127.0.0.1:0";
            start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
            start.Environment["LITELLM_CONFIG_PATH"] = Path.Combine(GatewayHost.RepositoryRoot, "litellm-config.yaml");
            start.Environment["TOGETHER_API_KEY"] = GatewayHost.TogetherKey;
            start.Environment["Onyx__Providers__together_ai__ApiBase"] = primary.ToString();
            start.Environment["Onyx__CallLog__Stdout"] = "true";
            start.Environment.Remove("OTEL_EXPORTER_OTLP_ENDPOINT");
            start.Environment.Remove("LITELLM_MASTER_KEY");
            var process = Process.Start(start) ?? throw new InvalidOperationException("The gateway did not start.");
            var gateway = new GatewayProcess(process);
            process.OutputDataReceived += (_, e) => gateway.Add(e.Data);
            process.ErrorDataReceived += (_, e) => gateway.Add(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            try
            {
                await Task.WhenAny(gateway.WaitForLineAsync("Application started", timeout), process.WaitForExitAsync()).Unwrap();
                Assert.False(process.HasExited, "The gateway exited at start:\n" + string.Join('\n', gateway.Lines));
                const string listening = "Now listening on: ";
                var address = gateway.Lines.Select(l => l.IndexOf(listening, StringComparison.Ordinal) is var at and >= 0 ? l[(at + listening.Length)..].Trim() : null)
                    .FirstOrDefault(a => a is not null);
                Assert.True(address is not null, "The gateway did not say where it listens:\n" + string.Join('\n', gateway.Lines));
                gateway.BaseAddress = new Uri(address + "/");
            }
            catch
            {
                await gateway.DisposeAsync();
                throw;
            }
            return gateway;
        }

        /// <summary>Sends SIGTERM, as <c>docker stop</c>, Kubernetes and Aspire do.</summary>
        public void Terminate()
        {
            using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            kill.WaitForExit();
            Assert.Equal(0, kill.ExitCode);
        }

        public async Task WaitForLineAsync(string text, TimeSpan timeout)
        {
            TaskCompletionSource seen = new(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_gate)
            {
                if (_lines.Any(line => line.Contains(text, StringComparison.Ordinal)))
                {
                    return;
                }
                _waiters.Add((text, seen));
            }
            try
            {
                await seen.Task.WaitAsync(timeout);
            }
            catch (TimeoutException)
            {
                throw new TimeoutException($"The gateway wrote no line with '{text}' within {timeout}:\n" + string.Join('\n', Lines));
            }
        }

        public async Task<int> WaitForExitAsync(TimeSpan timeout)
        {
            await _process.WaitForExitAsync().WaitAsync(timeout);
            return _process.ExitCode;
        }

        private void Add(string? line)
        {
            if (line is null)
            {
                return;
            }
            List<TaskCompletionSource> seen = [];
            lock (_gate)
            {
                _lines.Enqueue(line);
                _waiters.RemoveAll(w =>
                {
                    var match = line.Contains(w.Text, StringComparison.Ordinal);
                    if (match)
                    {
                        seen.Add(w.Seen);
                    }
                    return match;
                });
            }
            seen.ForEach(s => s.TrySetResult());
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
            _process.Dispose();
        }
    }
}
