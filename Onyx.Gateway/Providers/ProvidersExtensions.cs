namespace Onyx.Gateway.Providers;

internal static class ProvidersExtensions
{
    public static IHostApplicationBuilder AddProviders(this IHostApplicationBuilder builder)
    {
        builder.Services.AddSingleton<UpstreamClients>();
        builder.Services.AddSingleton<IChatProvider, OpenAiCompatibleProvider>();
        builder.Services.AddSingleton<IChatProvider, OllamaProvider>();
        return builder;
    }
}
