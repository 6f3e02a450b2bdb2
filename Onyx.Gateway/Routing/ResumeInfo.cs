using Onyx.Gateway.OpenAi;
using Onyx.Gateway.Providers;

namespace Onyx.Gateway.Routing;

/// <summary>Where an answer broke, which deployment took it over, and how the seam was proven.</summary>
internal sealed record ResumeInfo(string From, string To, int AtChars, string Reason, string How);
