
namespace Onyx.Gateway.Routing;

internal enum SeamState
{
    Pending,
    Matched,
    Diverged,
}
