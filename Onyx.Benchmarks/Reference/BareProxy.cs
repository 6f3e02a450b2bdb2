using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Onyx.Benchmarks.Reference;

/// <summary>
/// The floor: the least a .NET reverse proxy can do — Kestrel in, one <see cref="HttpClient"/> out, bytes copied
/// and flushed as they come — with none of the gateway's work (no parsing, routing, limits, logs, metrics or audit).
/// Measured beside the gateway, it shows how much of the gateway's cost is the extra hop itself on this machine and
/// how much is the gateway's own.
/// </summary>
internal static class BareProxy
{
    public static async Task<WebApplication> StartAsync(Uri upstreamChat)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);
        var app = builder.Build();
        var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, UseCookies = false, AllowAutoRedirect = false, MaxConnectionsPerServer = int.MaxValue })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
        app.MapPost("/v1/chat/completions", async context =>
        {
            var aborted = context.RequestAborted;
            using var request = new HttpRequestMessage(HttpMethod.Post, upstreamChat) { Content = new StreamContent(context.Request.Body) };
            request.Content.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse(context.Request.ContentType ?? "application/json");
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, aborted);
            context.Response.StatusCode = (int)response.StatusCode;
            context.Response.ContentType = response.Content.Headers.ContentType?.ToString();
            await using var body = await response.Content.ReadAsStreamAsync(aborted);
            var buffer = new byte[16 * 1024];
            int read;
            while ((read = await body.ReadAsync(buffer, aborted)) > 0)
            {
                await context.Response.Body.WriteAsync(buffer.AsMemory(0, read), aborted);
                await context.Response.Body.FlushAsync(aborted);
            }
        });
        await app.StartAsync();
        return app;
    }

    public static Uri Address(WebApplication app) =>
        new(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
}
