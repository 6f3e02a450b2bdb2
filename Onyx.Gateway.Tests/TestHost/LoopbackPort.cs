using System.Net;
using System.Net.Sockets;

namespace Onyx.Gateway.Tests.TestHost;

/// <summary>A loopback port nothing listens on right now, for a child process to take.</summary>
public static class LoopbackPort
{
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
