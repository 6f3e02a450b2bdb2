using System.Text.Json;
using System.Text.Json.Serialization;

namespace Onyx.Gateway.Providers;

/// <summary>One line of Ollama's <c>/api/chat</c> answer (streamed as NDJSON, or the whole non-streaming body).</summary>
internal sealed class OllamaChatLine
{
    [JsonPropertyName("model")] public string? Model { get; set; }
    [JsonPropertyName("message")] public OllamaMessage? Message { get; set; }
    [JsonPropertyName("done")] public bool Done { get; set; }
    [JsonPropertyName("done_reason")] public string? DoneReason { get; set; }
    [JsonPropertyName("prompt_eval_count")] public int? PromptEvalCount { get; set; }
    [JsonPropertyName("eval_count")] public int? EvalCount { get; set; }
    [JsonPropertyName("error")] public string? Error { get; set; }
}

internal sealed class OllamaMessage
{
    [JsonPropertyName("role")] public string? Role { get; set; }
    [JsonPropertyName("content")] public string? Content { get; set; }

    /// <summary>A thinking model's reasoning, kept apart from the answer.</summary>
    [JsonPropertyName("thinking")] public string? Thinking { get; set; }

    /// <summary>The tools the model calls: each whole, in one line (Ollama does not stream a call's arguments in pieces).</summary>
    [JsonPropertyName("tool_calls")] public List<OllamaToolCall>? ToolCalls { get; set; }
}

/// <summary><c>{"function":{"name","arguments":{…}}}</c>: the arguments are a JSON object, not OpenAI's string.</summary>
internal sealed class OllamaToolCall
{
    [JsonPropertyName("function")] public OllamaToolFunction? Function { get; set; }
}

internal sealed class OllamaToolFunction
{
    [JsonPropertyName("name")] public string? Name { get; set; }
    [JsonPropertyName("arguments")] public JsonElement Arguments { get; set; }
}

[JsonSerializable(typeof(OllamaChatLine))]
internal sealed partial class OllamaJsonContext : JsonSerializerContext;
