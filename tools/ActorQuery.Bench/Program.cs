using ActorQuery.Bench;
using ActorQuery.Host.Cli;

// The measuring tools: engine (the engine alone: one stream, many streams, a profile), http (streaming load on a
// running server), soak (mixed requests with disconnects), tokenizer (encoding speed).
return Verbs.Run(args, "help", new Dictionary<string, Func<string[], int>>
{
    ["engine"] = BenchCommand.Run,
    ["http"] = HttpBenchCommand.Run,
    ["soak"] = SoakCommand.Run,
    ["tokenizer"] = TokenizerBenchCommand.Run,
}, _ => Usage());

static int Usage()
{
    Console.WriteLine("""
        dotnet run --project tools/ActorQuery.Bench -- VERB [options]
          engine     [--model DIR] [--dtypes float32,bfloat16] [--prefill-tokens 512] [--decode-tokens 32]
                     [--decode-prompt-lengths 16,1024] [--repeats 3] [--threads N] [--out FILE]
                     engine speed; default model: the Qwen2.5-0.5B shape with random weights
                     --grammar [--schema FILE] [--sequences 40]: constrained decoding's mask cost per sequence per
                     step on the model's vocabulary, next to its one-stream decode step
                     --prefix-cache [--prefix-tokens 1000] [--suffix-tokens 24] [--max-tokens-per-step N]: time to
                     first token with the prompt's first prefix-tokens in the prefix cache vs uncached, and the ratio
          http       --url URL [--concurrency 1,4,16,64] [--input-tokens 128] [--output-tokens 128]
                     [--requests-per-stream 4] [--max-seconds 300] [--warmup 2] [--temperature 0]
                     [--model DIR [--dtype D] [--dummy-weights] [--device D] [--threads N] [--engine-repeats 5]]
                     [--no-engine] [--tokenizer DIR] [--server-args TEXT] [--request-timeout 1800] [--out bench/results]
                     streaming load on a running server; markdown, PNG and JSON (scripts/bench-http.sh runs it all)
          soak       --url URL [--requests 5000] [--concurrency 16] [--warmup 1000] [--max-tokens 64]
                     [--disconnect-fraction 0.1] [--seed 2026] [--server-pid PID] [--idle-seconds 10]
                     [--rss-tolerance 0.05] [--rss-samples 5] [--max-seconds S] [--request-timeout 300] [--model-note TEXT] [--out bench/results]
                     mixed requests with client disconnects; counts and RSS (scripts/soak.sh runs it all)
          tokenizer  --tokenizer PATH [--mb N] [--seed S] [--json]
        """);
    return 0;
}
