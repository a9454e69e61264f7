namespace ActorQuery.Host.Cli;

internal static class Usage
{
    public static int Print()
    {
        Console.WriteLine("""
            actorquery [verb] [options]
              serve      (default) HTTP server on http://localhost:8000; options (also in appsettings.json
                         and ACTORQUERY__<Key> environment variables; help --markdown prints them as README tables):
            """ + Environment.NewLine + Serve.ServeCli.Help() + """

              generate   --model DIR (--input-ids 1,2,3 | --prompt TEXT | --messages-file FILE) [--max-new-tokens N]
                         [--temperature T] [--top-p P] [--top-k K] [--min-p P] [--repetition-penalty R]
                         [--presence-penalty P] [--frequency-penalty F] [--seed S] [--stop TEXT]
                         [--dtype float32|bfloat16|int8|auto] [--quantize int8] [--device cpu|cuda|mps|auto] [--threads N]
                         [--dummy-weights] [--ignore-eos] [--json]
              tokenize   --tokenizer PATH (--text TEXT | --messages-file FILE) [--add-special-tokens] [--json]

            benchmarks, load and soak: dotnet run --project tools/ActorQuery.Bench -- help
            training and evaluation of the default model: dotnet run --project tools/ActorQuery.DefaultModel -- help
            """);
        return 0;
    }

    /// <summary><c>actorquery help --markdown</c>: the README's configuration tables, from the one table of settings.</summary>
    public static int PrintMarkdown()
    {
        Console.Write(Serve.ServeSettings.Markdown());
        return 0;
    }
}
