namespace Onyx.Gateway.Tests.TestHost;

/// <summary>A test class with its own gateway (fresh fakes, breakers and logs for every test) and a client.</summary>
public abstract class GatewayTest : IAsyncLifetime
{
    protected GatewayHost Gateway { get; private set; } = null!;

    protected HttpClient Client { get; private set; } = null!;

    /// <summary>Settings on top of <see cref="GatewayHost"/>'s defaults.</summary>
    protected virtual Dictionary<string, string?>? Settings => null;

    /// <summary>Service replacements (e.g. a fake clock).</summary>
    protected virtual Action<Microsoft.Extensions.DependencyInjection.IServiceCollection>? Services => null;

    public async Task InitializeAsync()
    {
        Gateway = await GatewayHost.StartAsync(Settings, Services);
        Client = Gateway.CreateClient();
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Gateway.DisposeAsync();
    }
}
