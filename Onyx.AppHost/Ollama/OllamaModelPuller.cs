using Microsoft.Extensions.Logging;

namespace Onyx.AppHost.Ollama;

/// <summary>
/// Makes a model present on its Ollama server once the server is ready: checks <c>/api/show</c>, otherwise pulls it
/// through <c>/api/pull</c>, and shows the progress as the model resource's state ("Downloading 42%", then "Running").
/// Works for any <see cref="IOllamaServerResource"/>, container or local process.
/// </summary>
internal sealed class OllamaModelPuller(OllamaApiClient ollama, ResourceNotificationService notifications, ResourceLoggerService resourceLoggers)
{
    /// <summary>The state shown while the model is being checked.</summary>
    internal const string CheckingState = "Checking";

    /// <summary>
    /// The state shown when the model could not be made present. Deliberately not a terminal state such as
    /// FailedToStart: whatever waits for the model keeps waiting, and starts by itself once the "Pull model"
    /// command (or a later pull) succeeds.
    /// </summary>
    internal const string PullFailedState = "Pull failed";

    /// <summary>Checks for the model, pulls it when missing, and publishes the outcome as the model's state.</summary>
    /// <returns>Whether the model is present (the state is then Running; otherwise <see cref="PullFailedState"/>, or unchanged on shutdown).</returns>
    public async Task<bool> EnsureModelAsync(OllamaModelResource model, CancellationToken cancellationToken)
    {
        var logger = resourceLoggers.GetLogger(model);
        try
        {
            var server = new Uri(model.Parent.PrimaryEndpoint.Url);
            await PublishStateAsync(model, CheckingState, KnownResourceStateStyles.Info).ConfigureAwait(false);

            if (await ollama.HasModelAsync(server, model.ModelName, cancellationToken).ConfigureAwait(false))
            {
                OllamaLog.ModelAlreadyPresent(logger, model.ModelName, model.Parent.Name);
            }
            else
            {
                OllamaLog.PullingModel(logger, model.ModelName, model.Parent.Name);
                await PullAsync(model, server, logger, cancellationToken).ConfigureAwait(false);
                if (!await ollama.HasModelAsync(server, model.ModelName, cancellationToken).ConfigureAwait(false))
                {
                    throw new InvalidOperationException($"Ollama finished pulling '{model.ModelName}' but does not show it.");
                }

                OllamaLog.ModelPulled(logger, model.ModelName);
            }

            await notifications.PublishUpdateAsync(model, s => s with
            {
                State = new(KnownResourceStates.Running, KnownResourceStateStyles.Success),
                StartTimeStamp = DateTime.UtcNow,
            }).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The AppHost is stopping, or whoever asked gave up.
            return false;
        }
        catch (Exception ex)
        {
            // Runs in the background: whatever went wrong must end up in the dashboard, never in an unobserved task.
            OllamaLog.PullFailed(logger, ex, model.ModelName, model.Parent.Name);
            await PublishStateAsync(model, PullFailedState, KnownResourceStateStyles.Error).ConfigureAwait(false);
            return false;
        }
    }

    private async Task PullAsync(OllamaModelResource model, Uri server, ILogger logger, CancellationToken cancellationToken)
    {
        int? shownPercent = null;
        var loggedStatuses = new HashSet<string>(StringComparer.Ordinal);

        await ollama.PullModelAsync(server, model.ModelName, async progress =>
        {
            if (loggedStatuses.Add(progress.Status))
            {
                OllamaLog.PullStatus(logger, model.ModelName, progress.Status);
            }

            if (progress.Percent is { } percent && percent != shownPercent)
            {
                shownPercent = percent;
                await PublishStateAsync(model, $"Downloading {percent}%", KnownResourceStateStyles.Info).ConfigureAwait(false);
            }
        }, cancellationToken).ConfigureAwait(false);
    }

    private Task PublishStateAsync(OllamaModelResource model, string state, string style) =>
        notifications.PublishUpdateAsync(model, s => s with { State = new(state, style) });
}
