namespace ActorQuery.Host.Cli;

internal static class Usage
{
    public static int Print()
    {
        Console.WriteLine("""
            actorquery [verb] [options]
              serve      (default) HTTP server on http://localhost:8000; options (also in appsettings.json
                         and ACTORQUERY__<Key> environment variables):
            """ + Environment.NewLine + Serve.ServeCli.Help() + """

              generate   --model DIR (--input-ids 1,2,3 | --prompt TEXT | --messages-file FILE) [--max-new-tokens N]
                         [--temperature T] [--top-p P] [--top-k K] [--min-p P] [--repetition-penalty R]
                         [--presence-penalty P] [--frequency-penalty F] [--seed S] [--stop TEXT]
                         [--dtype float32|bfloat16|auto] [--device cpu|cuda|mps|auto] [--threads N]
                         [--dummy-weights] [--ignore-eos] [--json]
              bench      [--model DIR] [--dtypes float32,bfloat16] [--prefill-tokens 512] [--decode-tokens 32]
                         [--decode-prompt-lengths 16,1024] [--repeats 3] [--threads N] [--out FILE]
                         engine speed; default model: the Qwen2.5-0.5B shape with random weights
              bench-http --url URL [--concurrency 1,4,16,64] [--input-tokens 128] [--output-tokens 128]
                         [--requests-per-stream 4] [--max-seconds 300] [--warmup 2] [--temperature 0]
                         [--model DIR [--dtype D] [--dummy-weights] [--device D] [--threads N] [--engine-repeats 3]]
                         [--no-engine] [--tokenizer DIR] [--server-args TEXT] [--request-timeout 1800] [--out bench/results]
                         streaming load on a running server; markdown, PNG and JSON (scripts/bench-http.sh runs it all)
              soak       --url URL [--requests 5000] [--concurrency 16] [--warmup 1000] [--max-tokens 64]
                         [--disconnect-fraction 0.1] [--seed 2026] [--server-pid PID] [--idle-seconds 10]
                         [--rss-tolerance 0.05] [--rss-samples 5] [--max-seconds S] [--request-timeout 300] [--model-note TEXT] [--out bench/results]
                         mixed requests with client disconnects; counts and RSS (scripts/soak.sh runs it all)
              tokenize   --tokenizer PATH (--text TEXT | --messages-file FILE) [--add-special-tokens] [--json]
              bench-tokenizer --tokenizer PATH [--mb N] [--seed S] [--json]
              train      --out DIR [--steps 9000] [--batch 128] [--lr 1e-3] [--warmup 200] [--seed 1234] [--threads 1]
                         [--eval-every 500] [--stop-at N] [--init-from DIR] [--hidden 128] [--layers 4] [--heads 4]
                         [--kv-heads 2] [--intermediate 4*hidden] [--no-number-init] [--digit-loss 3]
                         trains the default arithmetic model on the CPU (defaults: the shipped recipe); writes a Hugging Face folder
              eval       --model DIR [--count 2000] [--seed 2026] [--threads 1]
                         greedy accuracy on held-out + and - problems (at most 20000) and the multiplication table
            """);
        return 0;
    }
}
