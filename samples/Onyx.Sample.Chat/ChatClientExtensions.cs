using System.ClientModel;
using Microsoft.Extensions.AI;
using OpenAI;

namespace Onyx.Sample.Chat;

internal static class ChatClientExtensions
{
    /// <summary>The activity source of the chat client's spans (ServiceDefaults exports every <c>Onyx.*</c> source).</summary>
    public const string TelemetrySource = "Onyx.Sample.Chat";

    /// <summary>
    /// Registers an <see cref="IChatClient"/> that calls the gateway named by <c>ConnectionStrings:{connectionName}</c>,
    /// for the alias in the connection string's <c>Model</c> or else <c>Chat:Model</c>, and runs the tools a model calls.
    /// </summary>
    public static ChatClientBuilder AddOnyxChatClient(this IHostApplicationBuilder builder, string connectionName)
    {
        // Parsed now, so a missing or malformed connection string stops the start rather than the first request.
        var connection = OnyxConnection.Parse(connectionName, builder.Configuration.GetConnectionString(connectionName));
        var model = connection.Model ?? builder.Configuration["Chat:Model"]
            ?? throw new InvalidOperationException($"Chat:Model is not set, and ConnectionStrings:{connectionName} names no Model: say which gateway alias to call.");

        // The SDK's own pipeline, not an IHttpClientFactory client: the ServiceDefaults' standard resilience handler
        // (10 s per attempt) would cut long answers, and the gateway already fails over behind one request.
        var openAi = new OpenAIClient(new ApiKeyCredential(connection.Key), new OpenAIClientOptions { Endpoint = connection.Endpoint });

        return builder.Services.AddChatClient(openAi.GetChatClient(model).AsIChatClient())
            .UseFunctionInvocation()
            .UseOpenTelemetry(sourceName: TelemetrySource);
    }
}
