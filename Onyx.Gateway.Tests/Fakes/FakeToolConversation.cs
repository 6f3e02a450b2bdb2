namespace Onyx.Gateway.Tests.Fakes;

/// <summary>
/// A model that uses a tool, as OpenAI's chat protocol has it: offered the tool <see cref="Name"/>, it first answers
/// with a call of it (<c>finish_reason: "tool_calls"</c>); sent the conversation back with the tool's result, it
/// answers with text that uses that result (<see cref="Answer"/>). A conversation whose tool call has no tool message
/// answering it is refused with OpenAI's 400, so a client that never ran the tool cannot pass for one that did.
/// </summary>
public sealed record FakeToolConversation
{
    /// <summary>The function the model calls (it must be among the request's <c>tools</c>; otherwise it answers plainly).</summary>
    public required string Name { get; init; }

    /// <summary>The call's arguments, a JSON object as text (OpenAI sends them as a string).</summary>
    public required string Arguments { get; init; }

    /// <summary>The final answer; <see cref="ResultPlaceholder"/> stands for the content of the tool message it received.</summary>
    public required string Answer { get; init; }

    public const string ResultPlaceholder = "{result}";
}
