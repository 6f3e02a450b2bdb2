using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Onyx.AppHost.Ollama;

/// <summary>
/// Healthy only when the Ollama server really has the model: <c>POST /api/show {"model": …}</c> answers 200.
/// A running server without the model is not enough for the gateway's fallback deployment.
/// </summary>
internal sealed class OllamaModelHealthCheck(OllamaModelResource model, OllamaApiClient ollama) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!model.Parent.PrimaryEndpoint.IsAllocated)
        {
            return HealthCheckResult.Unhealthy($"Ollama server '{model.Parent.Name}' has no endpoint yet.");
        }

        try
        {
            return await ollama.HasModelAsync(new Uri(model.Parent.PrimaryEndpoint.Url), model.ModelName, cancellationToken).ConfigureAwait(false)
                ? HealthCheckResult.Healthy()
                : HealthCheckResult.Unhealthy($"Model '{model.ModelName}' is not present on '{model.Parent.Name}'.");
        }
        catch (HttpRequestException ex)
        {
            return HealthCheckResult.Unhealthy($"Ollama server '{model.Parent.Name}' did not answer.", ex);
        }
    }
}
