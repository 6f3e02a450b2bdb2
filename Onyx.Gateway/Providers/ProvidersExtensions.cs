using Microsoft.Extensions.Options;
using Onyx.Gateway.Configuration;
using ServiceDefaults = Microsoft.Extensions.Hosting.Extensions;

namespace Onyx.Gateway.Providers;

internal static class ProvidersExtensions
{
    public static IHostApplicationBuilder AddProviders(this IHostApplicationBuilder builder)
    {
        var tracesExported = ServiceDefaults.TracesExported(builder.Configuration);
        builder.Services.AddSingleton(services => new UpstreamClients(services.GetRequiredService<IOptions<OnyxOptions>>(), tracesExported));
        builder.Services.AddSingleton<IChatProvider, OpenAiCompatibleProvider>();
        builder.Services.AddSingleton<IChatProvider, OllamaProvider>();
        return builder;
    }
}
