using System.Net;
using System.Net.Sockets;

namespace Onyx.Benchmarks.Load;

internal static class LoopbackPort
{
    /// <summary>A loopback port nobody listens on right now, for a child process to take.</summary>
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
