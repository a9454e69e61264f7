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
              tokenize   --tokenizer PATH (--text TEXT | --messages-file FILE) [--add-special-tokens] [--json]
              bench-tokenizer --tokenizer PATH [--mb N] [--seed S] [--json]
            """);
        return 0;
    }
}
