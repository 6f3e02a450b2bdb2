namespace Onyx.Gateway.Routing;

internal static class RoutingExtensions
{
    public static IHostApplicationBuilder AddModelRouting(this IHostApplicationBuilder builder)
    {
        builder.Services.AddSingleton<ChatCompletionRouter>();
        return builder;
    }
}
