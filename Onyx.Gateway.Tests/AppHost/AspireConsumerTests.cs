using System.Data.Common;
using System.Net;
using System.Net.Http.Headers;
using System.Net.ServerSentEvents;
using System.Text.Json;
using System.Text.Json.Nodes;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Onyx.AppHost.Gateway;
using Onyx.AppHost.Samples;
using Onyx.Gateway.Tests.Fakes;

namespace Onyx.Gateway.Tests.AppHost;

/// <summary>
/// Another project of the AppHost using the gateway as Aspire projects use an OpenAI resource: the sample consumer
/// (<c>samples/Onyx.Sample.Chat</c>, an <c>IChatClient</c> over the OpenAI SDK) is handed <c>ConnectionStrings__onyx</c>
/// by <c>WithReference</c>, and its answers come through the gateway from a fake Together AI. Local infrastructure
/// (the AppHost's own redis-server, no container engine), a master key set, as an operator runs it.
/// </summary>
public sealed class AspireConsumerTests(AspireConsumerTests.SampleAppHost fixture) : IClassFixture<AspireConsumerTests.SampleAppHost>, IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);
    private readonly HttpClient _sample = fixture.App.CreateHttpClient(ChatSampleBuilderExtensions.SampleName, "http");

    public void Dispose()
    {
        _sample.Dispose();
        fixture.Primary.Reset();
    }

    /// <summary>One AppHost for the class, with the sample enabled.</summary>
    public sealed class SampleAppHost : IAsyncLifetime
    {
        public const string MasterKey = "sk-consumer-master-4f0a93";
        public const string TogetherKey = "sk-consumer-together-77c1";

        public DistributedApplication App { get; private set; } = null!;

        public FakeOpenAiProvider Primary { get; private set; } = null!;

        public string DataDirectory { get; } = Directory.CreateTempSubdirectory("onyx-apphost-data-").FullName;

        public async Task InitializeAsync()
        {
            Primary = await FakeOpenAiProvider.StartAsync(new FakeBehavior { Models = ["deepseek-ai/DeepSeek-V3"] });
            App = await AppHostFixture.StartAppHostAsync(
                "--Onyx:Infrastructure=local", "--Onyx:Sample:Enabled=true", $"--Onyx:DataDirectory={DataDirectory}",
                $"--Onyx:Gateway:PrimaryBaseUrl={Primary.BaseUrl}", $"--Parameters:together-api-key={TogetherKey}",
                $"--Parameters:master-key={MasterKey}");
            await App.ResourceNotifications.WaitForResourceHealthyAsync(ChatSampleBuilderExtensions.SampleName).WaitAsync(AppHostFixture.StartTimeout);
        }

        public async Task DisposeAsync()
        {
            if (App is not null)
            {
                await App.DisposeAsync();
            }
            await Primary.DisposeAsync();
            Directory.Delete(DataDirectory, recursive: true);
        }
    }

    [Fact]
    public async Task SampleGetsAWholeAnswerThroughTheGateway()
    {
        using var response = await _sample.GetAsync("/ask?q=Say%20hello").WaitAsync(Deadline);

        var answer = await JsonAsync(response);
        Assert.Equal(fixture.Primary.ExpectedText, (string?)answer["text"]);
        Assert.Equal("deepseek-ai/DeepSeek-V3", (string?)answer["model"]);
        Assert.Equal("stop", (string?)answer["finishReason"]);
        // One call reached Together AI (the fake), asked for the alias's model, not streamed, with the gateway's upstream key.
        var upstream = Assert.Single(fixture.Primary.Requests);
        Assert.Equal("deepseek-ai/DeepSeek-V3", upstream.Model);
        Assert.False((bool?)upstream.Json!["stream"] ?? false);
        Assert.Equal("Say hello", (string?)upstream.Json!["messages"]![0]!["content"]);
        Assert.Equal("Bearer " + SampleAppHost.TogetherKey, upstream.Authorization);
    }

    [Fact]
    public async Task SampleStreamsTheWholeAnswerAsTheFakeSentIt()
    {
        // Pieces that go wrong when a stream is trimmed, joined or cut: leading spaces, a newline, punctuation alone.
        IReadOnlyList<string> tokens = ["Stream", "ing", " through", " Onyx", ":", "\n", "  every", " piece", ",", " whole", "."];
        fixture.Primary.Tokens = tokens;

        using var request = new HttpRequestMessage(HttpMethod.Get, "/ask/stream?q=Stream%20please");
        using var response = await _sample.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).WaitAsync(Deadline);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);

        var deltas = new List<string>();
        string? done = null;
        using var cancel = new CancellationTokenSource(Deadline);
        await foreach (var item in SseParser.Create(await response.Content.ReadAsStreamAsync(cancel.Token)).EnumerateAsync(cancel.Token))
        {
            if (item.EventType == "delta")
            {
                deltas.Add(item.Data);
            }
            else if (item.EventType == "done")
            {
                done = item.Data;
            }
        }

        Assert.Equal(string.Concat(tokens), string.Concat(deltas));
        // It arrived in pieces, as streamed, not as one answer at the end.
        Assert.True(deltas.Count > 1, $"{deltas.Count} piece(s)");
        Assert.NotNull(done);
        Assert.Equal("stop", (string?)JsonNode.Parse(done)!["finishReason"]);
        var upstream = Assert.Single(fixture.Primary.Requests);
        Assert.True((bool?)upstream.Json!["stream"]);
    }

    [Fact]
    public async Task SampleRunsTheToolTheModelCallsAndTheModelAnswersWithItsResult()
    {
        fixture.Primary.Update(b => b with
        {
            ToolConversation = new FakeToolConversation
            {
                Name = "get_weather",
                Arguments = """{"city":"Paris"}""",
                Answer = "Take an umbrella ({result}).",
            },
        });

        using var response = await _sample.GetAsync("/tool?q=Do%20I%20need%20an%20umbrella%20in%20Paris%3F").WaitAsync(Deadline);

        var answer = await JsonAsync(response);
        // The tool ran once, with the arguments the model gave.
        var invocation = Assert.Single(answer["toolCalls"]!.AsArray())!;
        Assert.Equal("get_weather", (string?)invocation["name"]);
        Assert.Equal("Paris", (string?)invocation["arguments"]!["city"]);
        var result = (string)invocation["result"]!;
        // The model was asked twice: offered the tool, then sent the tool's result, which it answered with.
        Assert.Equal(2, fixture.Primary.Calls);
        var offered = fixture.Primary.Requests[0].Json!;
        Assert.Equal("get_weather", (string?)offered["tools"]![0]!["function"]!["name"]);
        var followUp = fixture.Primary.Requests[1].Json!["messages"]!.AsArray();
        var call = followUp.Single(m => (string?)m!["role"] == "assistant")!["tool_calls"]![0]!;
        var toolMessage = followUp.Single(m => (string?)m!["role"] == "tool")!;
        Assert.Equal((string?)call["id"], (string?)toolMessage["tool_call_id"]);
        // Microsoft.Extensions.AI sends a tool's return value as JSON: a string arrives quoted.
        var content = (string)toolMessage["content"]!;
        Assert.Equal(result, JsonSerializer.Deserialize<string>(content));
        Assert.Equal($"Take an umbrella ({content}).", (string?)answer["text"]);
        Assert.Equal("stop", (string?)answer["finishReason"]);
    }

    [Fact]
    public async Task ConsumerKeyCallsModelsButNotTheAdminEndpoints()
    {
        // The environment the sample's process was started with, as the orchestrator reports it.
        var environment = SampleEnvironment();
        var connectionString = environment["ConnectionStrings__" + GatewayConsumerBuilderExtensions.DefaultConsumerName];
        Assert.Equal(await fixture.App.GetConnectionStringAsync(GatewayConsumerBuilderExtensions.DefaultConsumerName).AsTask().WaitAsync(Deadline), connectionString);
        // The sample is given the consumer's key, and the master key nowhere.
        Assert.DoesNotContain(environment, e => e.Value?.Contains(SampleAppHost.MasterKey, StringComparison.Ordinal) == true);

        var parts = new DbConnectionStringBuilder { ConnectionString = connectionString };
        var endpoint = new Uri((string)parts["Endpoint"]);
        var key = (string)parts["Key"];
        Assert.Equal("/v1", endpoint.AbsolutePath);
        Assert.Equal(2, parts.Count);
        Assert.True(key.Length >= 48, "the generated key is shorter than asked");

        using var gateway = new HttpClient { BaseAddress = new Uri(endpoint.GetLeftPart(UriPartial.Authority)) };
        gateway.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var models = await gateway.GetAsync("/v1/models").WaitAsync(Deadline);
        Assert.Equal(HttpStatusCode.OK, models.StatusCode);
        using var infoResponse = await gateway.GetAsync("/key/info").WaitAsync(Deadline);
        var info = await JsonAsync(infoResponse);
        Assert.Equal(GatewayConsumerBuilderExtensions.DefaultConsumerName, (string?)info["info"]!["user_id"]);
        using var list = await gateway.GetAsync("/key/list").WaitAsync(Deadline);
        Assert.Equal(HttpStatusCode.Forbidden, list.StatusCode);
        using var generate = await gateway.PostAsync("/key/generate", new StringContent("{}", System.Text.Encoding.UTF8, "application/json")).WaitAsync(Deadline);
        Assert.Equal(HttpStatusCode.Forbidden, generate.StatusCode);
    }

    private Dictionary<string, string?> SampleEnvironment()
    {
        Assert.True(fixture.App.ResourceNotifications.TryGetCurrentState(ChatSampleBuilderExtensions.SampleName, out var state), "no state for the sample");
        return state.Snapshot.EnvironmentVariables.ToDictionary(e => e.Name, e => e.Value, StringComparer.Ordinal);
    }

    private static async Task<JsonNode> JsonAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync().WaitAsync(Deadline);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {body}");
        return JsonNode.Parse(body)!;
    }
}
