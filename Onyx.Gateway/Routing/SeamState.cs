using System.Text;

namespace Onyx.Gateway.Routing;

internal enum SeamState
{
    Pending,
    Matched,
    Diverged,
}
