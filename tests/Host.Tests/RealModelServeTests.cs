using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using ActorQuery.DefaultModel.Training;
using OpenAI;
using OpenAI.Chat;

namespace ActorQuery.Host.Tests;

/// <summary>
/// The shipped server end to end: Kestrel on 127.0.0.1, the real actors, the TorchSharp engine and the embedded
/// default model, asked with the official OpenAI client and plain HTTP. Questions are sums and differences
/// that the default model never saw in training (<see cref="ArithmeticTask.IsHeldOut"/>) and products.
/// </summary>
[Collection(ServeCollection.Name)]
public sealed class RealModelServeTests : IAsyncLifetime
{
    private DefaultModelServer _server = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _server = await DefaultModelServer.StartAsync(["--max-in-flight", "16"]);
        _http = _server.Http;
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private ChatClient Chat() => new OpenAIClient(new ApiKeyCredential("unused"),
        new OpenAIClientOptions { Endpoint = new Uri(_http.BaseAddress!, "/v1") }).GetChatClient("default");

    private async Task<JsonElement> Query(string json)
    {
        var r = await _http.PostAsync("/query", new StringContent(json, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        return JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    [Theory]
    [InlineData("What is 7 times 8?", 7, ArithmeticOp.Multiply, 8)]
    [InlineData("What is 11 + 15?", 11, ArithmeticOp.Add, 15)]
    [InlineData("Compute 10 - 38.", 10, ArithmeticOp.Subtract, 38)]
    [InlineData("500 加 513 等于多少？", 500, ArithmeticOp.Add, 513)]
    [InlineData("What is 500 minus 604?", 500, ArithmeticOp.Subtract, 604)]
    public async Task The_openai_client_gets_the_right_answer_and_a_stop_finish(string question, int a, ArithmeticOp op, int b)
    {
        var problem = new ArithmeticProblem(a, op, b);
        Assert.True(op == ArithmeticOp.Multiply || ArithmeticTask.IsHeldOut(problem), $"{question}: not a held-out problem");
        var completion = (await Chat().CompleteChatAsync([new UserChatMessage(question)],
            new ChatCompletionOptions { Temperature = 0 })).Value;
        Assert.Equal(problem.AnswerText, completion.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.True(completion.Usage.InputTokenCount > 5);
    }

    [Fact]
    public async Task Logit_bias_minus_100_on_the_greedy_answer_token_changes_the_answer_in_the_worker_process()
    {
        var tokens = ActorQuery.Tokenization.HfTokenizer.FromPath(DefaultModelServer.ModelFolder).Encode("95");
        int answer = Assert.Single(tokens);                           // "95" is one token of the default model
        string Ask(string extra) => $$"""{"messages": [{"role": "user", "content": "What is 37 + 58?"}], "temperature": 0{{extra}}}""";
        async Task<string> Content(string body)
        {
            var r = await _http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            return JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
        }
        Assert.Equal("95", await Content(Ask("")));
        string banned = await Content(Ask($$""", "logit_bias": {"{{answer}}": -100}"""));
        Assert.NotEqual("95", banned);
        Assert.DoesNotContain("95", banned);
    }

    [Fact]
    public async Task Several_seeded_choices_are_the_same_on_every_request()
    {
        const string body = """{"messages": [{"role": "user", "content": "What is 4821 times 77?"}], "n": 4, "temperature": 1.5, "seed": 1}""";
        async Task<List<string>> Choices()
        {
            var r = await _http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            var choices = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("choices").EnumerateArray().ToList();
            Assert.Equal([0, 1, 2, 3], choices.Select(c => c.GetProperty("index").GetInt32()));
            return choices.Select(c => c.GetProperty("message").GetProperty("content").GetString()!).ToList();
        }
        var first = await Choices();
        Assert.Equal(first, await Choices());
        Assert.True(first.Distinct().Count() > 1, $"four samples at temperature 1.5 all said {first[0]}");
    }

    [Fact]
    public async Task The_openai_responses_client_gets_the_answer_streamed_and_not()
    {
#pragma warning disable OPENAI001 // the Responses client is marked experimental in the library
        var client = new OpenAI.Responses.ResponsesClient(new ApiKeyCredential("unused"),
            new OpenAI.Responses.ResponsesClientOptions { Endpoint = new Uri(_http.BaseAddress!, "/v1") });
        var options = new OpenAI.Responses.CreateResponseOptions("default", [OpenAI.Responses.ResponseItem.CreateUserMessageItem("What is 37 + 58?")])
            { Temperature = 0 };
        var response = (await client.CreateResponseAsync(options)).Value;
        Assert.Equal("95", response.GetOutputText());
        options.StreamingEnabled = true;
        var deltas = new StringBuilder();
        await foreach (var update in await client.CreateResponseStreamingAsync(options))
            if (update is OpenAI.Responses.StreamingResponseOutputTextDeltaUpdate d) deltas.Append(d.Delta);
        Assert.Equal("95", deltas.ToString());
#pragma warning restore OPENAI001
    }

    [Fact]
    public async Task A_streamed_chat_concatenates_to_the_same_answer()
    {
        var text = new StringBuilder();
        await foreach (var update in Chat().CompleteChatStreamingAsync([new UserChatMessage("What is 12 times 11?")],
                           new ChatCompletionOptions { Temperature = 0 }))
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
        Assert.Equal("132", text.ToString());
    }

    [Fact]
    public async Task Native_query_answers_plain_and_chat_prompts()
    {
        var plain = await Query("""{"prompt": "What is 9 times 6?", "max_new_tokens": 8}""");
        Assert.Equal("54", plain.GetProperty("text").GetString());
        Assert.Equal("stop", plain.GetProperty("finish_reason").GetString());
        var chat = await Query("""{"messages": [{"role": "user", "content": "3 乘以 4 等于多少？"}], "max_new_tokens": 8}""");
        Assert.Equal("12", chat.GetProperty("text").GetString());
    }

    [Fact]
    public async Task Answers_under_load_batched_with_other_queries_are_the_same_as_alone()
    {
        // Sums and differences the model never saw in training, in every phrasing and both formats, and products.
        var rng = new Random(3);
        var examples = ArithmeticTask.HeldOutSet(20, seed: 77)
            .Concat(Enumerable.Range(0, 4).Select(i => ArithmeticTask.Render(new ArithmeticProblem(2 + i, ArithmeticOp.Multiply, 12 - i), rng)))
            .ToList();
        string Body(ArithmeticExample e) => e.Format == PromptFormat.Plain
            ? JsonSerializer.Serialize(new { prompt = e.Prompt, max_new_tokens = 8 })
            : JsonSerializer.Serialize(new { messages = e.Messages.Select(m => new { role = m.Role, content = m.Content }), max_new_tokens = 8 });
        var alone = new List<string>();
        foreach (var e in examples) alone.Add((await Query(Body(e))).GetProperty("text").GetString()!);
        var together = await Task.WhenAll(examples.Select(async e => (await Query(Body(e))).GetProperty("text").GetString()!));
        Assert.Equal(alone, together);
        Assert.Equal(examples.Select(e => e.Problem.AnswerText), alone);
    }

    [Fact]
    public async Task Health_reports_the_ready_worker_and_models_lists_the_default_model()
    {
        using var health = JsonDocument.Parse(await _http.GetStringAsync("/health"));
        Assert.True(health.RootElement.GetProperty("ready").GetBoolean());
        Assert.Equal("ready", health.RootElement.GetProperty("workers")[0].GetProperty("state").GetString());
        using var models = JsonDocument.Parse(await _http.GetStringAsync("/v1/models"));
        Assert.Equal("default", models.RootElement.GetProperty("data")[0].GetProperty("id").GetString());
    }

    [Fact]
    public async Task A_client_that_disconnects_mid_stream_frees_its_slot()
    {
        using var cts = new CancellationTokenSource();
        var request = new HttpRequestMessage(HttpMethod.Post, "/query")
        {
            Content = new StringContent("""{"prompt": "What is 5 times 5?", "max_new_tokens": 2000, "ignore_eos": true, "stream": true}""",
                Encoding.UTF8, "application/json"),
        };
        var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var stream = await response.Content.ReadAsStreamAsync(cts.Token);
        var buffer = new byte[64];
        Assert.True(await stream.ReadAsync(buffer, cts.Token) > 0);       // tokens are flowing
        cts.Cancel();
        response.Dispose();
        int inFlight = await Eventually.Until(async () =>
            {
                using var h = JsonDocument.Parse(await _http.GetStringAsync("/health"));
                return h.RootElement.GetProperty("in_flight").GetInt32();
            }, n => n == 0, TimeSpan.FromSeconds(15), "/health to report no query in flight after the disconnect", n => $"in_flight {n}",
            interval: TimeSpan.FromMilliseconds(100));
        Assert.Equal(0, inFlight);
        Assert.Equal("25", (await Query("""{"prompt": "What is 5 times 5?", "max_new_tokens": 8}""")).GetProperty("text").GetString());
    }

    [Fact]
    public async Task A_single_node_is_a_gateway_with_its_worker_process_as_a_cluster_member_with_the_worker_role()
    {
        var body = await Eventually.Until(async () =>
            {
                var r = await _http.GetAsync("/cluster");
                Assert.Equal(HttpStatusCode.OK, r.StatusCode);
                return JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.Clone();
            }, b => b.GetProperty("members").GetArrayLength() == 2 && b.GetProperty("workers").GetArrayLength() == 1,
            TimeSpan.FromSeconds(15), "/cluster to list two members and one worker", b => b.GetRawText(), interval: TimeSpan.FromMilliseconds(100));
        Assert.True(body.GetProperty("enabled").GetBoolean());
        var self = body.GetProperty("self").GetString()!;
        Assert.StartsWith("akka.tcp://actorquery@127.0.0.1:", self); // remoting on loopback, a free port by default
        var members = body.GetProperty("members").EnumerateArray().ToList();
        var gateway = Assert.Single(members, m => m.GetProperty("self").GetBoolean());
        Assert.Equal((self, "up"), (gateway.GetProperty("address").GetString(), gateway.GetProperty("status").GetString()));
        Assert.Equal(["gateway"], gateway.GetProperty("roles").EnumerateArray().Select(r => r.GetString()));
        var child = Assert.Single(members, m => !m.GetProperty("self").GetBoolean());
        Assert.Equal(["worker"], child.GetProperty("roles").EnumerateArray().Select(r => r.GetString()));
        var worker = Assert.Single(body.GetProperty("workers").EnumerateArray());
        Assert.Equal((child.GetProperty("address").GetString(), "ready"), (worker.GetProperty("address").GetString(), worker.GetProperty("state").GetString()));
        // /health names the same process: its address, its pid, no restart yet.
        var health = JsonDocument.Parse(await _http.GetStringAsync("/health")).RootElement;
        var process = Assert.Single(health.GetProperty("worker_processes").EnumerateArray());
        Assert.Equal(child.GetProperty("address").GetString(), process.GetProperty("address").GetString());
        Assert.True(process.GetProperty("pid").GetInt32() > 0);
        Assert.Equal(0, process.GetProperty("restarts").GetInt32());
    }
}
