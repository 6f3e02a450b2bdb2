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
}

[JsonSerializable(typeof(OllamaChatLine))]
internal sealed partial class OllamaJsonContext : JsonSerializerContext;
