using Microsoft.AspNetCore.Http.HttpResults;
using Onyx.Gateway.Auth;
using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Api;

/// <summary>
/// <c>GET /v1/models</c>: the aliases the caller's key may use, in OpenAI's list format. Nothing else is revealed.
/// </summary>
internal static class ModelsApi
{
    public static IEndpointRouteBuilder MapModelsApi(this IEndpointRouteBuilder app)
    {
        foreach (var prefix in new[] { "/v1", "" })
        {
            app.MapGet($"{prefix}/models", ListModels).RequireAuthorization(AuthExtensions.CallerPolicy);
            app.MapGet($"{prefix}/models/{{**id}}", GetModel).RequireAuthorization(AuthExtensions.CallerPolicy);
        }
        return app;
    }

    internal static Ok<ModelList> ListModels(HttpContext context, RoutingTable routing)
    {
        var caller = context.GetCaller();
        return TypedResults.Ok(new ModelList("list", routing.Aliases.Where(caller.MayUse).Select(Model).ToList()));
    }

    internal static Results<Ok<ModelObject>, OpenAiErrorResult> GetModel(HttpContext context, string id, RoutingTable routing) =>
        routing.TryGetChain(id, out _) && context.GetCaller().MayUse(id)
            ? TypedResults.Ok(Model(id))
            : new OpenAiErrorResult(StatusCodes.Status404NotFound,
                new OpenAiError($"The model '{id}' does not exist.", OpenAiErrorTypes.InvalidRequest, "model", "model_not_found"));

    private static ModelObject Model(string alias) => new(alias, "model", 0, "onyx");
}
