using Onyx.Gateway.Model;
using Onyx.Gateway.Providers;

namespace Onyx.Gateway.Routing;

internal static class AttemptFailures
{
    /// <summary>
    /// What went wrong with an attempt, as an <see cref="UpstreamException"/>: the adapter's own, a time-out (the attempt's
    /// timer fired), or an exception no adapter foresaw — handled like a malformed answer, so it fails over and
    /// never escapes with the attempt's resources.
    /// </summary>
    public static UpstreamException Describe(Exception ex, Deployment deployment, string timeoutReason) => ex switch
    {
        UpstreamException upstream => upstream,
        OperationCanceledException => new UpstreamException(FailureKind.Timeout, $"{deployment.Id}: {timeoutReason}"),
        _ => UpstreamErrors.Unexpected(ex, deployment),
    };
}
