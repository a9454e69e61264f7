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

              generate   --model DIR (--input-ids 1,2,3) [--max-new-tokens N] [--temperature T] [--top-p P]
                         [--top-k K] [--seed S] [--dtype float32|bfloat16|auto] [--device cpu|cuda|mps|auto]
                         [--dummy-weights] [--ignore-eos] [--json]
              bench      engine benchmark (see README)
            """);
        return 0;
    }
}
