using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Onyx.Gateway.Telemetry;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Telemetry;

/// <summary>
/// Without a trace or log exporter, the gateway builds no trace context that nobody would see: upstream calls carry
/// none (.NET's HTTP diagnostics handler, an Activity and a <c>traceparent</c> header per call, is left out of the
/// upstream clients' pipeline), and ASP.NET Core makes no Activity or log scope per request (its hosting logger is
/// off). <see cref="TracingTests"/> shows both are there when traces are exported.
/// </summary>
public sealed class UntracedTests : GatewayTest
{
    [Fact]
    public async Task UpstreamCallsCarryNoTraceContextWhenNoTracesAreExported()
    {
        // The client itself traces: its traceparent reaches the gateway.
        using var client = new Activity("test-client") { ActivityTraceFlags = ActivityTraceFlags.Recorded }.SetIdFormat(ActivityIdFormat.W3C).Start();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = GatewayHost.Json(GatewayHost.ChatBody()) };
        using var response = await Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1, Gateway.Primary.Calls);
        Assert.Null(Gateway.Primary.LastRequest!.Header("traceparent"));
    }

    [Fact]
    public void TheHostingLoggerThatMakesARequestActivityAndScopeIsOffWhenNothingIsExported() =>
        // ASP.NET Core asks exactly this before it builds a request's Activity and log scope for logging's sake.
        Assert.False(HostingLogger(Gateway).IsEnabled(LogLevel.Critical));

    [Fact]
    public async Task TheHostingLoggerStaysOnWhenTracesAreExported()
    {
        await using var gateway = await GatewayHost.StartAsync(new() { ["OpenTelemetry:Traces"] = "true" });

        Assert.True(HostingLogger(gateway).IsEnabled(LogLevel.Warning));
    }

    [Fact]
    public async Task TheHostingLoggerFollowsAnExplicitLevel()
    {
        await using var gateway = await GatewayHost.StartAsync(new() { [$"Logging:LogLevel:{HostingDiagnostics.Category}"] = "Information" });

        Assert.True(HostingLogger(gateway).IsEnabled(LogLevel.Information));
    }

    private static ILogger HostingLogger(GatewayHost gateway) =>
        gateway.Services.GetRequiredService<ILoggerFactory>().CreateLogger(HostingDiagnostics.Category);
}
