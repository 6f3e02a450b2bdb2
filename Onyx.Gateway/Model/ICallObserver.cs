namespace Onyx.Gateway.Model;

/// <summary>
/// What Routing tells about the calls it makes, and the only way it tells it: the call log, the metrics and the
/// audit trail each implement this in their own folder, so Routing depends on none of them (as YARP's forwarder
/// reports to telemetry consumers it does not know). Every method is called on the request's path: an observer
/// queues or counts, and never blocks or throws.
/// </summary>
internal interface ICallObserver
{
    /// <summary>Whether <see cref="CallEnded"/> should carry the prompt and the answer's text (gathered only when someone asks).</summary>
    bool WantsContent => false;

    /// <summary>A deployment's attempt failed and the router moved on (or gave up).</summary>
    void AttemptFailed(AttemptFailure failure)
    {
    }

    /// <summary>A streamed answer broke on one deployment and continues on another.</summary>
    void Resumed(string alias, ResumedAt resume)
    {
    }

    /// <summary>An attempt produced tokens that cost <paramref name="costUsd"/> on <paramref name="deployment"/>'s price.</summary>
    void Charged(string alias, string deployment, decimal costUsd)
    {
    }

    /// <summary>A streamed answer started (its first byte is on its way to the client).</summary>
    void StreamOpened()
    {
    }

    /// <summary>A stream opened by <see cref="StreamOpened"/> ended, however it ended.</summary>
    void StreamClosed()
    {
    }

    /// <summary>The call is over: exactly once per call, whichever way it ended.</summary>
    void CallEnded(CallRecord call);
}
