namespace Onyx.Gateway.Spend;

internal static class SpendExtensions
{
    /// <summary>Per-key spend: each call's cost (from the deployments' prices) added to its key's total.</summary>
    public static IHostApplicationBuilder AddSpendTracking(this IHostApplicationBuilder builder)
    {
        builder.Services.AddSingleton<SpendTracker>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<SpendTracker>());
        return builder;
    }
}
