using System.ComponentModel;
using System.Diagnostics;
using Microsoft.Extensions.Configuration;

namespace Onyx.AppHost.Infrastructure;

/// <summary>
/// Asks the container runtime Aspire would use (<c>ASPIRE_CONTAINER_RUNTIME</c>, else docker) whether its engine
/// answers: <c>docker info</c> / <c>podman info</c> exits 0 within a short timeout. A client without an engine does not count.
/// </summary>
internal static class ContainerRuntimeProbe
{
    public static ContainerRuntimeStatus Probe(IConfiguration configuration, TimeSpan timeout)
    {
        var name = (configuration["ASPIRE_CONTAINER_RUNTIME"] ?? configuration["DOTNET_ASPIRE_CONTAINER_RUNTIME"])?.Trim().ToLowerInvariant();
        name = string.IsNullOrEmpty(name) ? "docker" : name;

        if (ExecutableLocator.FindOnPath(name) is not { } path)
        {
            return new(name, Answers: false, $"no '{name}' on PATH");
        }

        try
        {
            using var process = Process.Start(new ProcessStartInfo(path, "info")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            }) ?? throw new Win32Exception($"'{path}' did not start");

            // Drain both pipes so a chatty `info` cannot block on a full buffer.
            _ = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync();

            if (!process.WaitForExit(timeout))
            {
                process.Kill(entireProcessTree: true);
                return new(name, Answers: false, $"'{name} info' did not answer within {timeout.TotalSeconds:0} s");
            }

            return process.ExitCode == 0
                ? new(name, Answers: true, $"'{name} info' exited 0")
                : new(name, Answers: false, $"'{name} info' exited {process.ExitCode}");
        }
        catch (Win32Exception ex)
        {
            return new(name, Answers: false, ex.Message);
        }
    }
}

/// <summary>What <see cref="ContainerRuntimeProbe"/> found.</summary>
internal readonly record struct ContainerRuntimeStatus(string Name, bool Answers, string Detail);
