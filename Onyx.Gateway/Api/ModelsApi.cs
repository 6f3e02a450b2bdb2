using Microsoft.AspNetCore.Http.HttpResults;
using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Routing;

namespace Onyx.Gateway.Api;

/// <summary><c>GET /v1/models</c>: the configured aliases, in OpenAI's list format. Nothing else is revealed.</summary>
internal static class ModelsApi
{
    public static IEndpointRouteBuilder MapModelsApi(this IEndpointRouteBuilder app)
    {
        foreach (var prefix in new[] { "/v1", "" })
        {
            app.MapGet($"{prefix}/models", ListModels);
            app.MapGet($"{prefix}/models/{{**id}}", GetModel);
        }
        return app;
    }

    internal static Ok<ModelList> ListModels(RoutingTable routing) =>
        TypedResults.Ok(new ModelList("list", routing.Aliases.Select(Model).ToList()));

    internal static Results<Ok<ModelObject>, OpenAiErrorResult> GetModel(string id, RoutingTable routing) =>
        routing.TryGetChain(id, out _)
            ? TypedResults.Ok(Model(id))
            : new OpenAiErrorResult(StatusCodes.Status404NotFound,
                new OpenAiError($"The model '{id}' does not exist.", OpenAiErrorTypes.InvalidRequest, "model", "model_not_found"));

    private static ModelObject Model(string alias) => new(alias, "model", 0, "onyx");
}
