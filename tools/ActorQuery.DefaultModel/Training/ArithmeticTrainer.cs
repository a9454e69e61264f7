using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace ActorQuery.DefaultModel.Training;

/// <summary>Options of <see cref="ArithmeticTrainer.Train"/> (the <c>train</c> verb's flags). The defaults are the
/// recipe of the shipped <c>models/default</c>, so <c>train --out DIR</c> alone trains it again.</summary>
/// <param name="StopAt">Ends the run at this step without changing the learning-rate schedule of <paramref name="Steps"/>.</param>
/// <param name="NumberInit">Starts number tokens' embeddings from their digits (<see cref="Qwen2TrainingModel.InitNumberEmbeddings"/>).</param>
/// <param name="DigitLossWeight">Weight of the <see cref="DigitSupervision"/> probes' loss; 0 trains on the answer tokens alone.</param>
public sealed record TrainingOptions(
    int Steps = 9000,
    int BatchSize = 128,
    double LearningRate = 1e-3f, // the CLI reads --lr as a float: the same value bit for bit as "train --lr 0.001"
    int WarmupSteps = 200,
    double WeightDecay = 0.01,
    int Seed = 1234,
    int Threads = 1,
    int EvalEvery = 500,
    int EvalCount = 200,
    int? StopAt = null,
    string? InitFrom = null,
    bool NumberInit = true,
    double DigitLossWeight = 3);

/// <summary>
/// Trains the default model on <see cref="ArithmeticTask"/>: AdamW with linear warmup and cosine decay, batches padded
/// to their longest sequence. The loss is at the answer positions only (the prompt is masked): the next answer token,
/// plus <see cref="TrainingOptions.DigitLossWeight"/> × the <see cref="DigitSupervision"/> probes' loss. Deterministic for a
/// given seed and thread count: data come from <see cref="Random"/>(seed), weights from torch.manual_seed(seed).
/// </summary>
public sealed class ArithmeticTrainer
{
    private const int IgnoreIndex = -100;
    private readonly TrainingTokenizer _tok;
    private readonly Action<string> _log;

    public ArithmeticTrainer(TrainingTokenizer tokenizer, Action<string> log)
    {
        _tok = tokenizer;
        _log = log;
    }

    /// <param name="onEval">Called after each periodic evaluation (e.g. to save a checkpoint).</param>
    public Qwen2TrainingModel Train(TrainingModelConfig config, TrainingOptions o, Action<Qwen2TrainingModel, int>? onEval = null)
    {
        torch.set_num_threads(o.Threads);
        torch.manual_seed(o.Seed);
        var model = new Qwen2TrainingModel(config);
        if (o.InitFrom is not null) model.LoadFrom(o.InitFrom);
        else if (o.NumberInit) model.InitNumberEmbeddings(_tok.NumberTokens());
        _log($"model: {HfFolderWriter.Describe(model)}");
        using var digits = o.DigitLossWeight > 0 ? new DigitSupervision(config.HiddenSize) : null;
        var parameters = digits is null ? model.parameters().ToList() : model.parameters().Concat(digits.parameters()).ToList();
        var stateIndices = DigitSupervision.StateIndices(config.NumLayers);
        var optimizer = torch.optim.AdamW(parameters, o.LearningRate, 0.9, 0.98, 1e-8, o.WeightDecay);
        var rng = new Random(o.Seed);
        var probe = ArithmeticTask.HeldOutSet(o.EvalCount, o.Seed + 1);
        var sw = Stopwatch.StartNew();
        var pending = new Queue<List<Encoded>>();
        double lossSum = 0, digitSum = 0;
        int lossN = 0;
        // StopAt ends the run early without changing the schedule, so step k of an N-step run is reproducible.
        int last = Math.Min(o.Steps, o.StopAt ?? o.Steps);
        for (int step = 1; step <= last; step++)
        {
            double lr = LearningRateAt(step, o);
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
            using (var scope = NewDisposeScope())
            {
                if (pending.Count == 0) pending = NextBuckets(rng, o.BatchSize);
                var batch = pending.Dequeue();
                var (inputs, labels, targets) = MakeBatch(batch);
                optimizer.zero_grad();
                var states = model.HiddenStates(inputs); // each [b, t, hidden]
                var flatLabels = labels.view(-1);
                var answered = flatLabels.ne(IgnoreIndex).nonzero().squeeze(1); // positions with a label
                Tensor At(Tensor s) => s.view(-1, s.shape[2]).index_select(0, answered); // [n, hidden]
                var logits = model.Logits(At(states[^1])); // [n, vocab]
                var answerLoss = nn.functional.cross_entropy(logits, flatLabels.index_select(0, answered));
                var loss = answerLoss;
                if (digits is not null)
                {
                    var aux = digits.Loss(stateIndices.Select(i => At(states[i])).ToList(), targets.index_select(0, answered));
                    digitSum += aux.item<float>();
                    loss = loss + o.DigitLossWeight * aux;
                }
                loss.backward();
                nn.utils.clip_grad_norm_(parameters, 1.0);
                optimizer.step();
                lossSum += answerLoss.item<float>();
                lossN++;
            }
            if (step % 100 == 0)
            {
                _log(string.Create(CultureInfo.InvariantCulture, $"step {step}/{o.Steps} loss {lossSum / lossN:F4}{(digits is null ? "" : $" digit loss {digitSum / lossN:F4}")} lr {lr:E2} elapsed {sw.Elapsed.TotalMinutes:F1} min"));
                lossSum = 0;
                digitSum = 0;
                lossN = 0;
            }
            if (step % o.EvalEvery == 0 || step == last)
            {
                var acc = Accuracy(model, probe);
                _log(string.Create(CultureInfo.InvariantCulture, $"step {step}: held-out greedy accuracy {acc.Correct}/{acc.Total} = {100.0 * acc.Correct / acc.Total:F2}%"));
                onEval?.Invoke(model, step);
            }
        }
        _log(string.Create(CultureInfo.InvariantCulture, $"trained {last} steps in {sw.Elapsed.TotalMinutes:F1} min"));
        return model;
    }

    /// <summary>Sixteen batches at a time, drawn as one pool and cut by token length, so that a few long prompts
    /// (chats with a system message) do not pad a whole batch; the batches then go in random order.</summary>
    private Queue<List<Encoded>> NextBuckets(Random rng, int batchSize)
    {
        const int Buckets = 16;
        var pool = Enumerable.Range(0, batchSize * Buckets).Select(_ => ArithmeticTask.NextTraining(rng))
            .Select((e, i) => (e: new Encoded(e.Problem, _tok.Encode(e.Prompt), _tok.Encode(e.Completion)), i))
            .OrderBy(x => x.e.Prompt.Count + x.e.Completion.Count).ThenBy(x => x.i).Select(x => x.e).ToList();
        var batches = pool.Chunk(batchSize).Select(c => c.ToList()).ToList();
        rng.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(batches));
        return new Queue<List<Encoded>>(batches);
    }

    /// <summary>An example's prompt and completion as token ids, encoded once for bucketing and batching.</summary>
    private sealed record Encoded(ArithmeticProblem Problem, IReadOnlyList<int> Prompt, IReadOnlyList<int> Completion);

    private static double LearningRateAt(int step, TrainingOptions o)
    {
        if (step <= o.WarmupSteps) return o.LearningRate * step / o.WarmupSteps;
        double progress = (double)(step - o.WarmupSteps) / Math.Max(1, o.Steps - o.WarmupSteps);
        return o.LearningRate * (0.05 + 0.95 * 0.5 * (1 + Math.Cos(Math.PI * progress)));
    }

    /// <summary>Inputs and next-token labels, right-padded; labels are <see cref="IgnoreIndex"/> except on the
    /// completion (answer digits and the end-of-turn token).</summary>
    private (Tensor Inputs, Tensor Labels, Tensor DigitTargets) MakeBatch(IReadOnlyList<Encoded> seqs)
    {
        int t = seqs.Max(s => s.Prompt.Count + s.Completion.Count) - 1;
        var inputs = new long[seqs.Count * t];
        var labels = new long[seqs.Count * t];
        var targets = new long[seqs.Count * t * DigitSupervision.Columns];
        Array.Fill(inputs, _tok.EndOfTextId);
        Array.Fill(labels, IgnoreIndex);
        for (int i = 0; i < seqs.Count; i++)
        {
            var ids = seqs[i].Prompt.Concat(seqs[i].Completion).ToArray();
            var digitTargets = DigitSupervision.Targets(seqs[i].Problem); // the same at each of its answer positions
            for (int j = 0; j + 1 < ids.Length; j++)
            {
                inputs[i * t + j] = ids[j];
                if (j + 1 < seqs[i].Prompt.Count) continue;
                labels[i * t + j] = ids[j + 1];
                digitTargets.CopyTo(targets, (i * t + j) * DigitSupervision.Columns);
            }
        }
        return (tensor(inputs, [seqs.Count, t]), tensor(labels, [seqs.Count, t]), tensor(targets, [seqs.Count * t, DigitSupervision.Columns]));
    }

    /// <summary>Greedy answers of the training model (no KV cache: the whole buffer each step), in input order.</summary>
    public IReadOnlyList<string> GreedyAnswers(Qwen2TrainingModel model, IReadOnlyList<ArithmeticExample> examples, int maxNew = 8, int batchSize = 250)
    {
        var answers = new List<string>(examples.Count);
        using var noGrad = no_grad();
        model.eval();
        for (int start = 0; start < examples.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var chunk = examples.Skip(start).Take(batchSize).ToList();
            var prompts = chunk.Select(e => _tok.Encode(e.Prompt)).ToList();
            int width = prompts.Max(p => p.Count) + maxNew;
            var buffer = new long[chunk.Count, width];
            var lengths = prompts.Select(p => p.Count).ToArray();
            var generated = chunk.Select(_ => new List<int>()).ToList();
            var done = new bool[chunk.Count];
            for (int i = 0; i < chunk.Count; i++)
                for (int j = 0; j < width; j++) buffer[i, j] = j < prompts[i].Count ? prompts[i][j] : _tok.EndOfTextId;
            for (int s = 0; s < maxNew && done.Any(d => !d); s++)
            {
                int cur = lengths.Max();
                using var input = tensor(buffer).narrow(1, 0, cur);
                using var logits = model.forward(input); // [b, cur, vocab]
                var next = logits.argmax(-1).data<long>().ToArray(); // [b * cur]
                for (int i = 0; i < chunk.Count; i++)
                {
                    if (done[i]) continue;
                    int id = (int)next[i * cur + lengths[i] - 1];
                    if (id == _tok.ImEndId || id == _tok.EndOfTextId) { done[i] = true; continue; }
                    generated[i].Add(id);
                    buffer[i, lengths[i]] = id;
                    lengths[i]++;
                }
            }
            for (int i = 0; i < chunk.Count; i++) answers.Add(done[i] ? _tok.Decode(generated[i]) : _tok.Decode(generated[i]) + "…(no end of turn)");
        }
        model.train();
        return answers;
    }

    public (int Correct, int Total) Accuracy(Qwen2TrainingModel model, IReadOnlyList<ArithmeticExample> examples)
    {
        var answers = GreedyAnswers(model, examples);
        int correct = examples.Where((e, i) => answers[i] == e.Problem.AnswerText).Count();
        return (correct, examples.Count);
    }
}
