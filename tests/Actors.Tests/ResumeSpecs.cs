using Akka.Actor;
using Akka.TestKit;
using ActorQuery.Contracts;
using ActorQuery.Actors.Routing;
using ActorQuery.Actors.Tests.Support;
using ActorQuery.Actors.Workers;
using ActorQuery.Inference.Engine;
using Xunit.Abstractions;

namespace ActorQuery.Actors.Tests;

/// <summary>
/// Resume, not retry: a router with a real local worker (ModelSupervisor + ModelActor) over the fake engine, whose model
/// runs out of memory in the middle of a query. What the client gets must equal an undisturbed run's answer: the same
/// tokens, text and logprobs, no gap or duplicate across the cut, and a stop string that spans the cut still stops it.
/// </summary>
public sealed class ResumeSpecs(ITestOutputHelper output) : ActorSpec(null, output)
{
    private static readonly int[] Prompt = [11, 12, 13];

    private IActorRef StartNode(IEngineFactory engine, RouterOptions? options = null)
    {
        var r = Sys.ActorOf(QueryRouter.Props("node-a", options ?? new RouterOptions(), new CacheOptions { Enabled = false }));
        r.Tell(new RegisterWorker(Sys.ActorOf(ModelSupervisor.Props("worker-1", "node-a", engine, FastWorkers()))));
        AwaitCondition(() => RouterStatusOf(r).Workers.Count(w => w.State == WorkerState.Ready) == 1, TimeSpan.FromSeconds(10));
        return r;
    }

    private static List<QueryEvent> Run(IActorRef router, TestProbe client, QueryRequest request)
    {
        router.Tell(new SubmitQuery(request, client.Ref));
        var events = new List<QueryEvent>();
        do events.Add(client.ExpectMsg<QueryEvent>(TimeSpan.FromSeconds(10)));
        while (!events[^1].IsTerminal);
        return events;
    }

    /// <summary>The events of <paramref name="request"/> on a worker whose model runs out of memory at the given
    /// engine steps (the fake engine gives each sequence one token per step, so step n + 1 fails after n tokens).</summary>
    private (List<QueryEvent> Events, FakeEngineLog Engine, RouterCounters Counters) RunWithOom(QueryRequest request, int[] oomAtSteps,
        RouterOptions? options = null)
    {
        var engines = new FakeEngineFactory(tokenizer: new LetterTokenizer());
        var router = StartNode(new FaultInjectingEngineFactory(engines, new FaultOptions { OomAtSteps = oomAtSteps }), options);
        var events = Run(router, CreateTestProbe(), request);
        return (events, engines.Log, RouterStatusOf(router).Counters!);
    }

    private List<QueryEvent> RunUndisturbed(QueryRequest request) =>
        Run(StartNode(new FakeEngineFactory(tokenizer: new LetterTokenizer())), CreateTestProbe(), request);

    private static int[] Tokens(IEnumerable<QueryEvent> events) => events.OfType<TokensGenerated>().SelectMany(t => t.TokenIds).ToArray();
    private static string Text(IEnumerable<QueryEvent> events) => string.Concat(events.OfType<TokensGenerated>().Select(t => t.Text));

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Should_resume_a_query_after_an_out_of_memory_with_the_undisturbed_answer_and_no_gap_or_duplicate(bool buffered)
    {
        var request = Greedy("q", 10, Prompt) with
        {
            Buffered = buffered,
            Sampling = SamplingParams.Greedy(10) with { Logprobs = true, PresencePenalty = 0.5f, FrequencyPenalty = 0.25f },
        };
        var answer = FakeEngine.GreedyAnswer(Prompt, 10);

        var (events, engine, counters) = RunWithOom(request, oomAtSteps: [4]);

        Assert.Equal(answer, Tokens(events));
        Assert.Equal(LetterTokenizer.TextOf(answer), Text(events));
        Assert.Equal(answer.Select(FakeEngine.LogprobOf),
            events.OfType<TokensGenerated>().SelectMany(t => t.Logprobs!).Select(l => l.Logprob));
        var done = Assert.IsType<QueryCompleted>(events[^1]);
        Assert.Equal((FinishReason.Length, 3, 10), (done.FinishReason, done.PromptTokens, done.CompletionTokens));
        Assert.Empty(events.OfType<QueryFailed>());
        Assert.Equal((1, 0, 0), (counters.Resumed, counters.Retried, counters.Failed));
        // The restarted worker was asked for the same query continued from the 3 tokens generated before the cut: its
        // prompt, budget and penalties as sent (the engine counts the tokens against the budget and in the penalties).
        var requests = engine.Requests.ToArray();
        Assert.Equal(2, requests.Length);
        Assert.Empty(requests[0].Generated);
        Assert.Equal(answer.Take(3), requests[1].Generated);
        Assert.Equal(Prompt, requests[1].PromptIds);
        Assert.Equal(request.Sampling, requests[1].Sampling);
    }

    [Fact]
    public void Should_still_stop_at_a_stop_string_that_spans_the_cut()
    {
        var answer = LetterTokenizer.TextOf(FakeEngine.GreedyAnswer(Prompt, 12));
        var stop = answer.Substring(2, 2);   // the 3rd token's letter (before the cut) and the 4th's (after it)
        Assert.Equal(2, answer.IndexOf(stop, StringComparison.Ordinal)); // it first occurs across the cut
        var request = Greedy("q", 12, Prompt) with { StopStrings = [stop] };

        var undisturbed = RunUndisturbed(request);
        var (events, _, counters) = RunWithOom(request, oomAtSteps: [4]);

        Assert.Equal(answer[..2], Text(undisturbed));
        Assert.Equal(Text(undisturbed), Text(events));
        Assert.Equal(FinishReason.Stop, Assert.IsType<QueryCompleted>(events[^1]).FinishReason);
        Assert.Equal(4, Assert.IsType<QueryCompleted>(events[^1]).CompletionTokens);
        Assert.Equal(1, counters.Resumed);
    }

    [Fact]
    public void Should_fail_a_query_whose_worker_keeps_failing_once_it_was_resumed_max_resumes_times()
    {
        var request = Greedy("q", 10, Prompt);

        var (events, _, counters) = RunWithOom(request, oomAtSteps: [2, 4, 6], new RouterOptions { MaxResumes = 2 });

        var failed = Assert.IsType<QueryFailed>(events[^1]);
        Assert.StartsWith("resumed 2 times; its worker failed again: model ran out of memory", failed.Reason);
        Assert.Equal(FakeEngine.GreedyAnswer(Prompt, 3), Tokens(events)); // one token per attempt, none twice
        Assert.Equal((2, 1), (counters.Resumed, counters.Failed));
    }
}
