using Onyx.Gateway.Configuration;
using Onyx.Gateway.Providers;

namespace Onyx.Gateway.Routing;

internal readonly record struct Decision(FailureClass Class, NextStep Next, BreakerVerdict Breaker, TimeSpan Delay = default);
