using Onyx.Gateway.Api;
using Onyx.Gateway.Audit;
using Onyx.Gateway.Auth;
using Onyx.Gateway.Cluster;
using Onyx.Gateway.Configuration;
using Onyx.Gateway.Health;
using Onyx.Gateway.Model;
using Onyx.Gateway.Providers;
using Onyx.Gateway.RateLimiting;
using Onyx.Gateway.Resilience;
using Onyx.Gateway.Routing;
using Onyx.Gateway.Security;
using Onyx.Gateway.Telemetry;
using Onyx.Gateway.Ui;

try
{
    var builder = WebApplication.CreateBuilder(args);

    builder.AddServiceDefaults();
    builder.AddGatewayConfiguration();
    builder.AddRoutingTable();
    builder.AddGatewaySecurity();
    builder.AddGatewayTelemetry();
    builder.AddCluster();
    builder.AddProviders();
    builder.AddGatewayResilience();
    builder.AddModelRouting();
    builder.AddGatewayAuth();
    builder.AddRateLimiting();
    builder.AddAuditTrail();
    builder.AddGatewayHealth();
    builder.AddGracefulShutdown();
    builder.AddGatewayApi();
    builder.AddAdminConsole();

    var app = builder.Build();
    app.ValidateConfiguration();

    app.UseGatewaySecurity();
    app.UseOpenAiErrors();
    app.UseAdminConsole();
    app.UseAuthentication();
    app.UseAuthorization();
    app.UseAdminConsoleForms();
    app.MapDefaultEndpoints();
    app.MapGatewayMetrics();
    app.MapModelsApi();
    app.MapChatCompletionsApi();
    app.MapKeysApi();
    app.MapAuditApi();
    app.MapAdminConsole();

    app.Run();
}
catch (Exception error) when (StartFailure.IsReported(error))
{
    return StartFailure.Report(error, Console.Error);
}
return 0;
