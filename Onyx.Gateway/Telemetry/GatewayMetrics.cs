using System.Collections.Frozen;
using System.Diagnostics.Metrics;
using System.Diagnostics;
using Onyx.Gateway.Model;

namespace Onyx.Gateway.Telemetry;

/// <summary>
/// The gateway's meter: OpenTelemetry GenAI instruments plus Onyx's own. Labels are low-cardinality
/// (alias, deployment, outcome): never user or request ids, and never text a client or an upstream chose — an alias,
/// deployment or model the config does not name is <see cref="Unknown"/>, so no caller can grow the process's memory
/// and every scrape by sending made-up model names.
/// </summary>
internal sealed class GatewayMetrics : ICallObserver
{
    public const string MeterName = "Onyx.Gateway";

    /// <summary>The label of anything the config does not name.</summary>
    public const string Unknown = "unknown";

    private readonly FrozenSet<string> _aliases;
    private readonly FrozenSet<string> _deployments;
    private readonly FrozenSet<string> _models;

    private readonly Meter _meter;
    private readonly Counter<long> _requests;
    private readonly Counter<long> _upstreamErrors;
    private readonly Counter<long> _fallbacks;
    private readonly Counter<long> _resumes;
    private readonly Counter<double> _cost;
    private readonly Counter<long> _breakerTransitions;
    private readonly Histogram<double> _duration;
    private readonly Histogram<double> _timeToFirstToken;
    private readonly Histogram<long> _tokens;
    private readonly UpDownCounter<long> _activeStreams;
    private readonly Counter<long> _rateLimited;
    private readonly Counter<long> _budgetRefusals;
    private readonly Counter<long> _softBudgetCrossings;

    public GatewayMetrics(IMeterFactory meterFactory, RoutingTable routing)
    {
        _aliases = routing.Aliases.ToFrozenSet(StringComparer.Ordinal);
        _deployments = routing.Deployments.Select(d => d.Id).ToFrozenSet(StringComparer.Ordinal);
        _models = routing.Deployments.Select(d => d.ProviderModel).ToFrozenSet(StringComparer.Ordinal);
        _meter = meterFactory.Create(MeterName);
        _requests = _meter.CreateCounter<long>("onyx.gateway.requests", "{request}", "LLM requests by alias, deployment and outcome");
        _upstreamErrors = _meter.CreateCounter<long>("onyx.gateway.upstream.errors", "{error}", "Failed upstream attempts by deployment, error kind and reason");
        _fallbacks = _meter.CreateCounter<long>("onyx.gateway.fallbacks", "{request}", "Requests answered (or last tried) by a deployment other than the alias's first");
        _resumes = _meter.CreateCounter<long>("onyx.gateway.stream.resumes", "{resume}", "Streams that broke mid-answer and were continued on another deployment");
        // The unit is an annotation ({USD}) so the Prometheus name stays onyx_gateway_cost_total.
        _cost = _meter.CreateCounter<double>("onyx.gateway.cost", "{USD}", "What calls cost in US dollars, from the deployments' prices, by alias and deployment");
        _breakerTransitions = _meter.CreateCounter<long>("onyx.gateway.circuit_breaker.transitions", "{transition}", "Circuit breaker state changes");
        _duration = _meter.CreateHistogram("gen_ai.client.operation.duration", "s", "GenAI operation duration",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92] });
        _timeToFirstToken = _meter.CreateHistogram("gen_ai.client.operation.time_to_first_chunk", "s", "Time to the first chunk of a streamed answer",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0] });
        _tokens = _meter.CreateHistogram<long>("gen_ai.client.token.usage", "{token}", "Tokens used per call, by token type",
            advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864] });
        _activeStreams = _meter.CreateUpDownCounter<long>("onyx.gateway.streams.active", "{stream}", "Streams in flight");
        _rateLimited = _meter.CreateCounter<long>("onyx.gateway.rate_limit.refusals", "{request}", "Requests refused by a rate limit, by limit, scope and alias");
        _budgetRefusals = _meter.CreateCounter<long>("onyx.gateway.budget.refusals", "{request}", "Requests refused because their key is over its budget, by limit (budget, model_budget) and alias");
        _softBudgetCrossings = _meter.CreateCounter<long>("onyx.gateway.budget.soft_crossings", "{crossing}", "Keys whose spend crossed their soft budget (once per budget window)");
    }

    private string Alias(string alias) => _aliases.Contains(alias) ? alias : Unknown;

    private string Deployment(string? deployment) => deployment is null ? "none" : _deployments.Contains(deployment) ? deployment : Unknown;

    /// <summary>The model an upstream named: one the config names, else <see cref="Unknown"/> (an upstream chooses it).</summary>
    private string? Model(string? model) => model is null ? null : _models.Contains(model) ? model : Unknown;

    void ICallObserver.CallEnded(CallRecord call)
    {
        var (alias, deployment) = (Alias(call.Alias), Deployment(call.Deployment));
        var outcome = call.Error?.Type ?? "success";
        _requests.Add(1, new TagList { { "onyx.alias", alias }, { "onyx.deployment", deployment }, { "onyx.outcome", outcome }, { "onyx.fallback", call.Fallback } });
        if (call.Fallback)
        {
            _fallbacks.Add(1, new TagList { { "onyx.alias", alias }, { "onyx.deployment", deployment }, { "onyx.outcome", outcome } });
        }
        if (call.Provider is not { } provider)
        {
            // No deployment was called: there is no GenAI operation to measure.
            return;
        }
        var tags = new TagList
        {
            { "gen_ai.operation.name", "chat" },
            { "gen_ai.provider.name", provider },
            { "gen_ai.request.model", alias },
        };
        if (Model(call.ResponseModel) is { } model)
        {
            tags.Add("gen_ai.response.model", model);
        }
        if (call.Error is { } error)
        {
            tags.Add("error.type", error.Type);
        }
        _duration.Record(call.Duration.TotalSeconds, tags);
        if (call.TimeToFirstToken is { } ttft)
        {
            _timeToFirstToken.Record(ttft.TotalSeconds, tags);
        }
        var inputTags = tags;
        inputTags.Add("gen_ai.token.type", "input");
        _tokens.Record(call.Tokens.Prompt, inputTags);
        var outputTags = tags;
        outputTags.Add("gen_ai.token.type", "output");
        _tokens.Record(call.Tokens.Completion, outputTags);
    }

    void ICallObserver.AttemptFailed(AttemptFailure failure) =>
        _upstreamErrors.Add(1, new TagList { { "onyx.deployment", Deployment(failure.Deployment) }, { "onyx.error.kind", failure.Kind }, { "onyx.reason", failure.Reason } });

    void ICallObserver.Resumed(string alias, ResumedAt resume) =>
        _resumes.Add(1, new TagList { { "onyx.alias", Alias(alias) }, { "onyx.from", Deployment(resume.From) }, { "onyx.to", Deployment(resume.To) }, { "onyx.reason", resume.Reason } });

    void ICallObserver.Charged(string alias, string deployment, decimal costUsd) =>
        _cost.Add((double)costUsd, new TagList { { "onyx.alias", Alias(alias) }, { "onyx.deployment", Deployment(deployment) } });

    void ICallObserver.StreamOpened() => _activeStreams.Add(1);

    void ICallObserver.StreamClosed() => _activeStreams.Add(-1);

    /// <param name="state"><c>Closed</c>, <c>Open</c> or <c>HalfOpen</c>.</param>
    /// <param name="followed">Whether another replica's announcement caused it (cluster-wide breakers).</param>
    public void BreakerTransition(string deployment, string state, bool followed) =>
        _breakerTransitions.Add(1, new TagList { { "onyx.deployment", deployment }, { "onyx.state", state }, { "onyx.cause", followed ? "replica" : "local" } });

    /// <param name="states">Each deployment's breaker state: 0 closed, 1 open, 2 half-open.</param>
    public void ObserveBreakers(Func<IEnumerable<(string Deployment, int State)>> states) =>
        _meter.CreateObservableGauge("onyx.gateway.circuit_breaker.state",
            () => states().Select(b => new Measurement<int>(b.State, new KeyValuePair<string, object?>("onyx.deployment", b.Deployment))),
            "{state}", "Circuit breaker state per deployment: 0 closed, 1 open, 2 half-open");

    public void RateLimited(string limit, string scope, string alias) =>
        _rateLimited.Add(1, new TagList { { "onyx.limit", limit }, { "onyx.scope", scope }, { "onyx.alias", Alias(alias) } });

    public void BudgetRefused(string limit, string alias) =>
        _budgetRefusals.Add(1, new TagList { { "onyx.limit", limit }, { "onyx.alias", alias } });

    public void SoftBudgetCrossed() => _softBudgetCrossings.Add(1);

    /// <summary>Where the rate-limit counters live now: 0 this process only (no Redis), 1 Redis, 2 memory while Redis is unreachable.</summary>
    public void ObserveRateLimitMode(Func<int> mode) =>
        _meter.CreateObservableGauge("onyx.gateway.rate_limit.mode", mode, "{mode}",
            "Rate-limit counters: 0 in process (no Redis), 1 shared in Redis, 2 per replica while Redis is unreachable");
}
