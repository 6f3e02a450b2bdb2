using System.Runtime.InteropServices;
using Onyx.Gateway.Model;
using Onyx.Gateway.OpenAi;

namespace Onyx.Gateway.Api;

/// <summary>
/// What a request may cost at most, reserved against its key's budget while it runs. Every call in flight holds an
/// amount no smaller than its cost, and a request is admitted only while the key's spend plus those amounts is below its
/// budget; so when the calls settle, the spend is below the budget plus the last admitted call's cost — a burst of
/// parallel requests through any number of replicas passes a budget by at most one request's cost.
/// </summary>
/// <remarks>
/// The bound, per deployment of the alias's chain (any of them may serve the call), taking the largest:
/// <list type="bullet">
/// <item>prompt tokens at most the UTF-8 bytes of what the model reads — <c>messages</c>, and <c>tools</c>,
/// <c>functions</c> and <c>response_format</c> when given — as the request's JSON holds them (the tokenizers of these
/// models are byte-level BPE: every token covers at least one byte of text, and each message's JSON keys and quotes,
/// some 28 bytes, outweigh the few tokens a chat template adds per message), and at most the deployment's
/// <c>model_info.max_input_tokens</c> (a longer prompt is refused and costs nothing); priced at the dearer of its input
/// and cache-read prices. Images are the exception: a model charges an image by its size, not by its URL's bytes;</item>
/// <item>output tokens at most the request's <c>max_tokens</c>/<c>max_completion_tokens</c>, else the deployment's
/// <c>max_tokens</c> (which the gateway sends when the client gives none), else its <c>model_info.max_output_tokens</c>,
/// else <see cref="UnboundedOutputTokens"/> (a model with no cap known to the gateway may answer longer: then the bound,
/// and the one-call overshoot, hold only for answers up to that length).</item>
/// </list>
/// A stream resumed on another deployment pays its prompt again: such a call may cost more than one attempt's bound.
/// </remarks>
internal static class BudgetEstimate
{
    /// <summary>The output assumed of a deployment with no output cap in its config or the request.</summary>
    public const int UnboundedOutputTokens = 4096;

    /// <summary>Request fields besides <c>messages</c> that providers put in the prompt.</summary>
    private static readonly string[] PromptFields = ["tools", "functions", "response_format"];

    public static decimal Of(ChatRequest request, IReadOnlyList<Deployment> chain)
    {
        var promptBytes = JsonMarshal.GetRawUtf8Value(request.Messages).Length;
        foreach (var read in PromptFields)
        {
            if (request.Body.TryGetProperty(read, out var value))
            {
                promptBytes += JsonMarshal.GetRawUtf8Value(value).Length;
            }
        }
        decimal most = 0;
        foreach (var deployment in chain)
        {
            if (deployment.Price is not { } price)
            {
                continue;
            }
            var prompt = Math.Min(promptBytes, deployment.MaxInputTokens ?? int.MaxValue);
            var output = request.RequestedMaxTokens ?? deployment.DefaultMaxTokens ?? deployment.MaxOutputTokens ?? UnboundedOutputTokens;
            most = Math.Max(most, prompt * price.MostPerInputToken + output * price.OutputPerToken);
        }
        return most;
    }
}
