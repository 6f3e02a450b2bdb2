using Onyx.AppHost.Gateway;
using Onyx.AppHost.Infrastructure;

var builder = DistributedApplication.CreateBuilder(args);

// Redis, Ollama and the fallback model: containers, local programs or configured URLs (Onyx:Infrastructure).
var infrastructure = builder.AddInfrastructure(InfrastructureModeSelector.Select(builder));

// The gateway on :4000, wired to that infrastructure, the LiteLLM config and the Together AI key.
builder.AddGateway(infrastructure);

builder.Build().Run();
