using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Onyx.Gateway.Tests.TestHost;
using Xunit.Abstractions;

namespace Onyx.Gateway.Tests.Security;

/// <summary>
/// Slowloris and friends on a raw socket: a client that trickles its headers or its body is cut off within
/// Kestrel's configured bounds, while ordinary requests on other connections keep being answered.
/// </summary>
public sealed class SlowClientTests(ITestOutputHelper output) : GatewayTest
{
    private const string KestrelConnections = "Microsoft.AspNetCore.Server.Kestrel.Connections";

    /// <summary>Kestrel's event ids for a connection started, stopped, and refused at the connection limit.</summary>
    private const int ConnectionStart = 1, ConnectionStop = 2, ConnectionRejected = 24;

    private static readonly TimeSpan HeadersTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan BodyGrace = TimeSpan.FromSeconds(2);

    /// <summary>Kestrel checks its timeouts on a one-second heartbeat; allow that and a loaded CI machine.</summary>
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(4);

    protected override Dictionary<string, string?> Settings => new()
    {
        ["Kestrel:Limits:RequestHeadersTimeout"] = "00:00:02",
        ["Kestrel:Limits:MinRequestBodyDataRate:BytesPerSecond"] = "100",
        ["Kestrel:Limits:MinRequestBodyDataRate:GracePeriod"] = "00:00:02",
        ["Onyx:RateLimits:Enabled"] = "false",
    };

    [Fact]
    public async Task ABodyTrickledBelowTheMinimumRateIsCutOffWhileOthersAreServed()
    {
        using var socket = await ConnectAsync();
        var stream = socket.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"model\":"));

        var (elapsed, answer, others) = await TrickleAsync(stream, "\"manus-primary\",\"messages\":[" + new string(' ', 1000));

        Assert.True(elapsed < BodyGrace + Slack, $"cut off after {elapsed}");
        Assert.True(elapsed >= BodyGrace - TimeSpan.FromMilliseconds(500), $"cut off already after {elapsed}");
        // Kestrel answers 408 when it can, or just closes; either way no chat call was made.
        Assert.True(answer.Length == 0 || answer.StartsWith("HTTP/1.1 408", StringComparison.Ordinal), answer);
        Assert.All(others, status => Assert.Equal(HttpStatusCode.OK, status));
        Assert.NotEmpty(others);
        Assert.Equal(others.Count, Gateway.Primary.Calls);
    }

    [Fact]
    public async Task HeadersTrickledPastTheHeadersTimeoutAreCutOffWhileOthersAreServed()
    {
        using var socket = await ConnectAsync();
        var stream = socket.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes("POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nX-Slow: "));

        var (elapsed, answer, others) = await TrickleAsync(stream, new string('a', 1000));

        Assert.True(elapsed < HeadersTimeout + Slack, $"cut off after {elapsed}");
        Assert.True(elapsed >= HeadersTimeout - TimeSpan.FromMilliseconds(500), $"cut off already after {elapsed}");
        Assert.True(answer.Length == 0 || answer.StartsWith("HTTP/1.1 408", StringComparison.Ordinal), answer);
        Assert.All(others, status => Assert.Equal(HttpStatusCode.OK, status));
        Assert.NotEmpty(others);
    }

    [Fact]
    public async Task ConnectionsBeyondTheLimitAreRefusedAndTheGatewayRecovers()
    {
        await using var gateway = await GatewayHost.StartAsync(new()
        {
            ["Kestrel:Limits:MaxConcurrentConnections"] = "2",
            // Kestrel says when a connection starts, is refused and stops (debug level): the signal that a slot is free.
            [$"Logging:LogLevel:{KestrelConnections}"] = "Debug",
        });
        var held = new List<TcpClient> { await ConnectAsync(gateway), await ConnectAsync(gateway) };
        // Both held connections are accepted (a request on each proves Kestrel counts them) and kept open.
        foreach (var connection in held)
        {
            await connection.GetStream().WriteAsync(Encoding.ASCII.GetBytes("GET /alive HTTP/1.1\r\nHost: gateway\r\n\r\n"));
            Assert.StartsWith("HTTP/1.1 200", await ReadHeadAsync(connection.GetStream()), StringComparison.Ordinal);
        }

        using (var third = await ConnectAsync(gateway))
        {
            var stream = third.GetStream();
            try
            {
                await stream.WriteAsync(Encoding.ASCII.GetBytes("GET /alive HTTP/1.1\r\nHost: gateway\r\n\r\n"));
            }
            catch (IOException)
            {
                // Already closed by the server: that is the refusal.
            }
            Assert.Equal(string.Empty, await ReadToEndAsync(stream, TimeSpan.FromSeconds(10)));
        }

        held.ForEach(c => c.Dispose());
        // Kestrel frees a connection's slot before it logs the connection stopped: once every connection it accepted
        // (all but the refused third) has stopped, a new one is taken.
        var refused = gateway.Logs.Records.Where(r => r.Category == KestrelConnections && r.EventId == ConnectionRejected).Select(r => r["ConnectionId"]).ToList();
        Assert.Single(refused);
        var accepted = gateway.Logs.Records.Where(r => r.Category == KestrelConnections && r.EventId == ConnectionStart).Select(r => r["ConnectionId"]).Except(refused).ToList();
        Assert.Equal(held.Count, accepted.Count);
        foreach (var id in accepted)
        {
            await gateway.Logs.WaitForAsync(r => r.Category == KestrelConnections && r.EventId == ConnectionStop && Equals(r["ConnectionId"], id), TimeSpan.FromSeconds(10));
        }
        using var client = gateway.CreateClient();
        using var alive = await client.GetAsync("/alive");
        Assert.Equal(HttpStatusCode.OK, alive.StatusCode);
    }

    /// <summary>
    /// Sends <paramref name="trickle"/> one byte every 250 ms (4 bytes/s) until the gateway closes the connection,
    /// while another client makes ordinary chat requests one after another.
    /// </summary>
    private async Task<(TimeSpan Elapsed, string Answer, List<HttpStatusCode> Others)> TrickleAsync(NetworkStream stream, string trickle)
    {
        var clock = Stopwatch.StartNew();
        var closed = ReadToEndAsync(stream, TimeSpan.FromSeconds(20));
        using var stop = new CancellationTokenSource();
        var others = Task.Run(async () =>
        {
            var statuses = new List<HttpStatusCode>();
            using var client = Gateway.CreateClient();
            while (!stop.IsCancellationRequested)
            {
                using var response = await client.PostAsync("/v1/chat/completions", GatewayHost.Json(GatewayHost.ChatBody()));
                statuses.Add(response.StatusCode);
            }
            return statuses;
        });

        foreach (var b in Encoding.ASCII.GetBytes(trickle))
        {
            if (closed.IsCompleted)
            {
                break;
            }
            try
            {
                await stream.WriteAsync(new[] { b });
            }
            catch (IOException)
            {
                break;
            }
            // The trickle's pace is the behaviour under test, not a wait for a condition.
            await Task.WhenAny(closed, Task.Delay(250));
        }
        var answer = await closed;
        var elapsed = clock.Elapsed;
        await stop.CancelAsync();
        var served = await others;
        output.WriteLine($"cut off after {elapsed.TotalSeconds:F2} s with '{answer.Split('\r')[0]}'; {served.Count} other requests meanwhile");
        return (elapsed, answer, served);
    }

    /// <summary>Everything the server sends until it closes the connection (or resets it).</summary>
    private static async Task<string> ReadToEndAsync(NetworkStream stream, TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        var received = new MemoryStream();
        var buffer = new byte[4096];
        try
        {
            int n;
            while ((n = await stream.ReadAsync(buffer, cancel.Token)) > 0)
            {
                received.Write(buffer, 0, n);
            }
        }
        catch (IOException)
        {
            // A reset is a close too.
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"The gateway kept the connection open for {timeout}.");
        }
        return Encoding.ASCII.GetString(received.ToArray());
    }

    private static async Task<string> ReadHeadAsync(NetworkStream stream)
    {
        var received = new StringBuilder();
        var buffer = new byte[1024];
        while (!received.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            var n = await stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.True(n > 0, "closed before the answer");
            received.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }
        return received.ToString();
    }

    private Task<TcpClient> ConnectAsync() => ConnectAsync(Gateway);

    private static async Task<TcpClient> ConnectAsync(GatewayHost gateway)
    {
        var client = new TcpClient { NoDelay = true };
        await client.ConnectAsync(gateway.BaseAddress.Host, gateway.BaseAddress.Port);
        return client;
    }
}
