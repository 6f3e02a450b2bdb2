using System.Text;
using Onyx.Gateway.Providers;

namespace Onyx.Benchmarks.Micro;

/// <summary>Runs a benchmarked stream once, before measuring, and fails the benchmark if the client would not get the right answer.</summary>
internal static class StreamCheck
{
    public static void Expect(string what, int chunks, string answer, AttemptContext context, Func<Stream, Task> write)
    {
        using var client = new MemoryStream();
        write(client).GetAwaiter().GetResult();
        var sse = Encoding.UTF8.GetString(client.ToArray());
        var events = sse.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        var problem =
            events.Length != chunks + 1 ? $"{events.Length} events, expected {chunks} chunks and [DONE]"
            : !events.All(e => e.StartsWith("data: {", StringComparison.Ordinal) || e == "data: [DONE]") ? "an event is not a data: line"
            : events[^1] != "data: [DONE]" ? "the stream does not end with [DONE]"
            : context.CompletionText.ToString() != answer ? $"the completion text is '{context.CompletionText}'"
            : null;
        if (problem is not null)
        {
            throw new InvalidOperationException($"{what}: {problem}.\n{sse}");
        }
    }
}
