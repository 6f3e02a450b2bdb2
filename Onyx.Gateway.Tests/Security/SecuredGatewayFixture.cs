using Onyx.Gateway.Tests.TestHost;

namespace Onyx.Gateway.Tests.Security;

/// <summary>
/// One gateway shared by a test class that sends many small requests (a corpus, a fuzz run): per-deployment output
/// limits declared in <c>model_info</c>, a small message cap and body limit, and no rate limits (every request must
/// reach validation, not a 429).
/// </summary>
public sealed class SecuredGatewayFixture : IAsyncLifetime
{
    public const int PrimaryMaxOutput = 8192;
    public const int FallbackMaxOutput = 4096;
    public const int MaxMessages = 8;
    public const int MaxBodyBytes = 256 * 1024;

    public GatewayHost Gateway { get; private set; } = null!;

    public HttpClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Gateway = await GatewayHost.StartAsync(new Dictionary<string, string?>
        {
            ["model_list:0:model_info:max_output_tokens"] = PrimaryMaxOutput.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["model_list:1:model_info:max_tokens"] = FallbackMaxOutput.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Onyx:Limits:MaxMessages"] = MaxMessages.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Onyx:Limits:MaxRequestBodyBytes"] = MaxBodyBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Onyx:RateLimits:Enabled"] = "false",
        });
        Client = Gateway.CreateClient();
    }

    public int UpstreamCalls => Gateway.Primary.Calls + Gateway.Fallback.Calls;

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Gateway.DisposeAsync();
    }
}
