using System.Net;
using Microsoft.Extensions.Logging;
using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Auth;

/// <summary>A gateway without any key: open on loopback (and loud about it), refused anywhere else.</summary>
public sealed class OpenAccessTests
{
    [Fact]
    public async Task ServesLoopbackWithoutAKeyAndSaysSoLoudly()
    {
        await using var gateway = await GatewayHost.StartAsync();
        using var client = gateway.CreateClient();

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var warning = Assert.Single(gateway.Logs.Records, r => r.EventId == 6001);
        Assert.Equal(LogLevel.Critical, warning.Level);
    }

    [Fact]
    public async Task RefusesToStartWithoutAKeyWhenListeningBeyondLoopback()
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAsync(url: "http://0.0.0.0:0"));

        var message = Flatten(error);
        Assert.Contains("No API key is configured", message);
        Assert.Contains("LITELLM_MASTER_KEY", message);
    }

    [Fact]
    public async Task StartsBeyondLoopbackWithAMasterKey()
    {
        await using var gateway = await GatewayHost.StartAsync(new() { ["LITELLM_MASTER_KEY"] = TestKeys.MasterKey }, url: "http://0.0.0.0:0");
        using var client = gateway.CreateClient(TestKeys.MasterKey);

        using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.DoesNotContain(gateway.Logs.Records, r => r.EventId == 6001);
    }

    [Theory]
    [InlineData("http://127.0.0.1:4000", true)]
    [InlineData("http://localhost:4000", true)]
    [InlineData("http://[::1]:4000", true)]
    [InlineData("http://0.0.0.0:4000", false)]
    [InlineData("http://+:8080", false)]
    [InlineData("http://*:8080", false)]
    [InlineData("http://10.1.2.3:4000", false)]
    public void KnowsWhichAddressesAreLoopback(string address, bool loopback) =>
        Assert.Equal(loopback, Onyx.Gateway.Auth.OpenAccessGuard.IsLoopback(address));

    private static string Flatten(Exception error)
    {
        var text = new System.Text.StringBuilder();
        for (Exception? e = error; e is not null; e = e.InnerException)
        {
            text.Append(e.Message).Append(' ');
            if (e is AggregateException aggregate)
            {
                foreach (var inner in aggregate.InnerExceptions)
                {
                    text.Append(Flatten(inner));
                }
            }
        }
        return text.ToString();
    }
}
