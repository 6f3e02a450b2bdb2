using System.Text.RegularExpressions;
using Onyx.Gateway.Model;
using Sentry;

namespace Onyx.Gateway.Telemetry;

/// <summary>
/// The story's <c>failure_callback: ["sentry"]</c>: with <c>SENTRY_DSN</c> set, failed LLM calls and unhandled
/// exceptions go to Sentry through its .NET SDK. What leaves the process carries no prompt or answer text and no
/// keys: requests' bodies, cookies and credentials headers are never attached, and every event and breadcrumb is
/// scrubbed of anything shaped like a key before it is sent.
/// </summary>
internal static partial class SentryReporting
{
    public const string DsnKey = "SENTRY_DSN";

    private const string Filtered = "[Filtered]";

    private static readonly string[] SecretHeaders = ["Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "x-api-key", "api-key"];

    public static bool Enabled(IConfiguration configuration) => !string.IsNullOrWhiteSpace(configuration[DsnKey]);

    public static void UseSentryIfConfigured(this IWebHostBuilder web, IConfiguration configuration)
    {
        if (!Enabled(configuration))
        {
            return;
        }
        web.UseSentry(options =>
        {
            options.Dsn = configuration[DsnKey];
            options.SendDefaultPii = false;
            options.MaxRequestBodySize = Sentry.Extensibility.RequestSize.None;
            // A failed call's event is a message, not an exception: a thread-pool stack says nothing about it.
            options.AttachStacktrace = false;
            // Traces go to OpenTelemetry; Sentry gets errors only.
            options.TracesSampleRate = 0;
            options.SetBeforeSend((sentryEvent, _) => Scrub(sentryEvent));
            options.SetBeforeBreadcrumb((breadcrumb, _) => breadcrumb.Message is { } message
                ? new Breadcrumb(ScrubText(message), breadcrumb.Type ?? "default", breadcrumb.Data?.ToDictionary(d => d.Key, d => ScrubText(d.Value)), breadcrumb.Category, breadcrumb.Level)
                : breadcrumb);
        });
    }

    /// <summary>Removes what must not leave the process; public for tests of the filter itself.</summary>
    internal static SentryEvent Scrub(SentryEvent sentryEvent)
    {
        var request = sentryEvent.Request;
        request.Data = null;
        request.Cookies = null;
        if (request.QueryString is { Length: > 0 })
        {
            request.QueryString = Filtered;
        }
        foreach (var header in SecretHeaders)
        {
            if (request.Headers.ContainsKey(header))
            {
                request.Headers[header] = Filtered;
            }
        }
        if (sentryEvent.Message is { } message)
        {
            sentryEvent.Message = new SentryMessage
            {
                Message = message.Message is { } template ? ScrubText(template) : null,
                Formatted = message.Formatted is { } formatted ? ScrubText(formatted) : null,
            };
        }
        foreach (var exception in sentryEvent.SentryExceptions ?? [])
        {
            if (exception.Value is { } value)
            {
                exception.Value = ScrubText(value);
            }
        }
        foreach (var (key, value) in sentryEvent.Extra.ToList())
        {
            if (value is string text)
            {
                sentryEvent.SetExtra(key, ScrubText(text));
            }
        }
        return sentryEvent;
    }

    /// <summary>Replaces bearer credentials and anything shaped like an OpenAI-style key (<c>sk-…</c>).</summary>
    internal static string ScrubText(string text) => SecretLike().Replace(text, Filtered);

    [GeneratedRegex(@"(?i:bearer)\s+[^\s,;""']+|\bsk-[A-Za-z0-9_\-]{6,}")]
    private static partial Regex SecretLike();
}

/// <summary>Sends failed LLM calls (5xx: every deployment failed, a stream broke) to Sentry when it is configured.</summary>
internal sealed class FailureReporter(IServiceProvider services, IConfiguration configuration) : ICallObserver
{
    private readonly IHub? _hub = SentryReporting.Enabled(configuration) ? services.GetService<IHub>() : null;

    public void CallEnded(CallRecord record)
    {
        if (_hub is null || record.Success || record.Status < 500 || record.Error is not { } error)
        {
            return;
        }
        var sentryEvent = new SentryEvent
        {
            Level = SentryLevel.Error,
            Message = new SentryMessage { Formatted = $"LLM call to '{record.Alias}' failed: {error.Type}" },
            Fingerprint = ["llm_call_failed", record.Alias, error.Type],
        };
        sentryEvent.SetTag("onyx.alias", record.Alias);
        sentryEvent.SetTag("onyx.deployment", record.Deployment ?? "none");
        sentryEvent.SetTag("onyx.status", record.Status.ToString(System.Globalization.CultureInfo.InvariantCulture));
        sentryEvent.SetTag("onyx.error_type", error.Type);
        sentryEvent.SetTag("onyx.fallback", record.Fallback ? "true" : "false");
        sentryEvent.SetExtra("request_id", record.RequestId);
        sentryEvent.SetExtra("attempts", record.AttemptCount);
        // The error message says which deployments failed and why; it never holds keys or prompt text.
        sentryEvent.SetExtra("error", error.Message);
        _hub.CaptureEvent(sentryEvent);
    }
}
