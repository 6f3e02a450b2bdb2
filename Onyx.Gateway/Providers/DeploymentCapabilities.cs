using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Providers;

/// <summary>What a deployment's <c>model_info</c> says its model cannot do, checked against a request.</summary>
internal static class DeploymentCapabilities
{
    /// <summary>The first feature the request uses that the deployment's <c>model_info</c> says its model lacks, or null.</summary>
    public static string? Lacks(Deployment deployment, ChatRequest request)
    {
        if (deployment.SupportsFunctionCalling == false && (RequestFeatures.OffersTools(request) || RequestFeatures.HasToolTurns(request)))
        {
            return "model_info says it does not support function calling, and the request uses tools";
        }
        if (deployment.SupportsVision == false && RequestFeatures.HasImages(request))
        {
            return "model_info says it does not support vision, and the request carries images";
        }
        if (deployment.SupportsResponseSchema == false && RequestFeatures.ResponseFormat(request) == "json_schema")
        {
            return "model_info says it does not support response schemas, and the request sets a json_schema response_format";
        }
        if (!deployment.DropParams && NotTaken(deployment, request) is var notTaken && notTaken != ProviderParameters.None)
        {
            return $"{deployment.Provider.Prefix}/ does not take {ProviderParameterNames.Describe(notTaken)} (drop_params: true would call it without them)";
        }
        return null;
    }

    /// <summary>The request's provider-specific parameters the deployment's provider does not take (left out of its calls with <c>drop_params</c>).</summary>
    public static ProviderParameters NotTaken(Deployment deployment, ChatRequest request) =>
        request.ProviderParameters & ~deployment.Provider.Takes;
}
