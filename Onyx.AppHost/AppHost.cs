using Onyx.AppHost.Gateway;
using Onyx.AppHost.Infrastructure;
using Onyx.AppHost.Samples;

var builder = DistributedApplication.CreateBuilder(args);

// Redis, Ollama and the fallback model: containers, local programs or configured URLs (Onyx:Infrastructure).
var infrastructure = builder.AddInfrastructure(InfrastructureModeSelector.Select(builder));

// The gateway on :4000, wired to that infrastructure, the LiteLLM config and the Together AI key.
var gateway = builder.AddGateway(infrastructure);

// What other projects reference: a key of their own and Endpoint=<gateway>/v1;Key=<key> (docs/aspire-integration.md).
var onyx = gateway.AddConsumer(GatewayConsumerBuilderExtensions.DefaultConsumerName);

// The sample consumer, an IChatClient through the gateway: only with Onyx:Sample:Enabled=true.
builder.AddChatSample(onyx);

builder.Build().Run();
