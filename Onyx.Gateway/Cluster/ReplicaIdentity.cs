namespace Onyx.Gateway.Cluster;

/// <summary>This gateway process among its replicas: a name that is unique and says where it runs.</summary>
internal sealed class ReplicaIdentity
{
    public string Id { get; } = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}";
}
