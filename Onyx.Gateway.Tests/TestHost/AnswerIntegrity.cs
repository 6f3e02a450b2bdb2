using System.Text.Json.Nodes;

namespace Onyx.Gateway.Tests.TestHost;

/// <summary>The only two things a client may receive from a stream.</summary>
public enum StreamOutcome
{
    /// <summary>Exactly the expected answer, once, ending in one finish reason and <c>[DONE]</c>, with one identity throughout.</summary>
    Whole,

    /// <summary>A prefix of the expected answer, then an error event with no finish reason and no <c>[DONE]</c>.</summary>
    CleanError,
}

/// <summary>
/// Reads the bytes a client received and decides which of the two promised outcomes they are; anything else — a
/// splice, a repeat, a truncated answer that looks whole, a second role, a changed id — fails the test, saying what it saw.
/// </summary>
public static class AnswerIntegrity
{
    public static StreamOutcome Check(string body, string expected)
    {
        var events = Sse.Events(body);
        var content = Sse.Content(events);
        var chunks = events.Where(e => e != "[DONE]").Select(e => JsonNode.Parse(e)!).ToList();
        var errors = chunks.Where(c => c["error"] is not null).ToList();
        var finishes = chunks.Count(c => c["choices"] is JsonArray { Count: > 0 } choices && choices[0]?["finish_reason"] is JsonValue);
        var what = $"content '{content}', {events.Count} events, last '{events.LastOrDefault()}'";

        if (events.Count > 0 && events[^1] == "[DONE]")
        {
            Assert.True(errors.Count == 0, $"an error event in a stream that ended with [DONE]: {what}");
            Assert.True(events.Count(e => e == "[DONE]") == 1, $"more than one [DONE]: {what}");
            Assert.True(content == expected, $"a stream that ended with [DONE] is not the whole answer exactly.\nexpected: '{expected}'\n{what}");
            Assert.True(finishes == 1, $"{finishes} finish reasons in a whole answer: {what}");
            var answerChunks = chunks.Where(c => c["choices"] is JsonArray { Count: > 0 }).ToList();
            Assert.True(answerChunks.Count(c => c["choices"]![0]!["delta"]?["role"] is not null) == 1, $"not exactly one role: {what}");
            Assert.True(chunks.Select(c => (string?)c["id"]).Distinct().Count() == 1, $"the chunk id changed mid-answer: {what}");
            Assert.True(chunks.Select(c => c["created"]?.ToJsonString()).Distinct().Count() == 1, $"'created' changed mid-answer: {what}");
            Assert.True(chunks.Where(c => c["system_fingerprint"] is not null).Select(c => (string?)c["system_fingerprint"]).Distinct().Count() <= 1,
                $"system_fingerprint changed mid-answer: {what}");
            return StreamOutcome.Whole;
        }

        Assert.True(events.Count > 0 && errors.Count == 1 && JsonNode.Parse(events[^1])!["error"] is not null,
            $"a stream without [DONE] must end with one error event and have no other: {what}");
        var error = JsonNode.Parse(events[^1])!["error"];
        Assert.Equal("stream_interrupted", (string?)error!["code"]);
        Assert.True(finishes == 0, $"a finish reason in an interrupted answer: {what}");
        Assert.True(expected.StartsWith(content, StringComparison.Ordinal),
            $"an interrupted answer carries text that is not the answer's beginning.\nexpected to start: '{expected}'\n{what}");
        return StreamOutcome.CleanError;
    }
}
