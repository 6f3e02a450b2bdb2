using System.Reflection;
using Microsoft.Extensions.Options;

namespace Onyx.Gateway.Configuration;

/// <summary>
/// A gateway that cannot start for its configuration says why as a plain list on stderr, one problem a line, each
/// naming its key, and exits with <see cref="ExitCode"/>: the person who wrote the config reads it, not a stack trace.
/// </summary>
internal static class StartFailure
{
    /// <summary>sysexits' EX_CONFIG: a supervisor can tell a bad configuration (restarting will not help) from a crash.</summary>
    public const int ExitCode = 78;

    /// <summary>
    /// Validates every option registered with <c>ValidateOnStart</c> now, before the host starts: a failure there would
    /// first be logged by the host with its stack trace.
    /// </summary>
    public static void ValidateConfiguration(this WebApplication app) => app.Services.GetRequiredService<IStartupValidator>().Validate();

    /// <summary>
    /// Whether <paramref name="error"/> is a configuration problem this process should report and exit on. Only the
    /// gateway's own process does: a host that runs this entry point itself (the tests' WebApplicationFactory) is told
    /// by the exception.
    /// </summary>
    public static bool IsReported(Exception error) =>
        Assembly.GetEntryAssembly() == typeof(StartFailure).Assembly && Problems(error).Any();

    /// <summary>Writes the problems, one a line, in the order of the keys they name (a section's problems together).</summary>
    public static int Report(Exception error, TextWriter stderr)
    {
        var problems = Problems(error).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        stderr.WriteLine($"The Onyx gateway cannot start: its configuration has {problems.Count} problem{(problems.Count == 1 ? "" : "s")}.");
        foreach (var problem in problems)
        {
            // One line each, whatever a message holds.
            stderr.WriteLine("  - " + problem.ReplaceLineEndings(" "));
        }
        stderr.Flush();
        return ExitCode;
    }

    private static IEnumerable<string> Problems(Exception error) => error switch
    {
        OptionsValidationException validation => validation.Failures,
        AggregateException aggregate when aggregate.InnerExceptions.All(e => Problems(e).Any()) => aggregate.InnerExceptions.SelectMany(Problems),
        TargetInvocationException { InnerException: { } inner } => Problems(inner),
        // The configuration binder's word for a value of the wrong type; it names the key ("at 'router_settings:…'").
        InvalidOperationException { Message: var message } when message.StartsWith("Failed to convert configuration value", StringComparison.Ordinal) => [message],
        _ => [],
    };
}
