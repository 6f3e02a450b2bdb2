using Onyx.Gateway.Configuration;

namespace Onyx.Gateway.Model;

/// <summary>Says once, at start-up, which deployments the gateway will route to, and which it cannot call and why.</summary>
internal sealed partial class RoutingTableReport(ConfigFileInfo file, RoutingTable routing, ILogger<RoutingTableReport> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        Log.ConfigLoaded(logger, file.Path, routing.Aliases.Count, routing.Deployments.Count);
        foreach (var deployment in routing.Deployments)
        {
            if (deployment.UnavailableReason is { } reason)
            {
                Log.DeploymentUnavailable(logger, deployment.Id, deployment.Alias, reason);
            }
            else
            {
                Log.DeploymentReady(logger, deployment.Id, deployment.Alias, deployment.ApiBase.GetLeftPart(UriPartial.Authority));
            }
        }
        if (routing.PreCallChecks)
        {
            foreach (var deployment in routing.Deployments.Where(d => d.MaxInputTokens is null))
            {
                // LiteLLM would look the model up in its own price and context map; Onyx has none.
                Log.NotPreChecked(logger, deployment.Id);
            }
        }
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(1001, LogLevel.Information, "Loaded LiteLLM config {ConfigPath}: {AliasCount} aliases, {DeploymentCount} deployments")]
        public static partial void ConfigLoaded(ILogger logger, string configPath, int aliasCount, int deploymentCount);

        [LoggerMessage(1002, LogLevel.Information, "Deployment {Deployment} (alias {Alias}) is available at {ApiBase}")]
        public static partial void DeploymentReady(ILogger logger, string deployment, string alias, string apiBase);

        [LoggerMessage(1003, LogLevel.Warning, "Deployment {Deployment} (alias {Alias}) is UNAVAILABLE and will be skipped by routing: {Reason}")]
        public static partial void DeploymentUnavailable(ILogger logger, string deployment, string alias, string reason);

        [LoggerMessage(1011, LogLevel.Warning, "router_settings:enable_pre_call_checks: deployment {Deployment} has no model_info:max_input_tokens, so no prompt is checked against it")]
        public static partial void NotPreChecked(ILogger logger, string deployment);
    }
}
