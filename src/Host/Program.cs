using ActorQuery.Host.Cli;

// Verbs: serve (default), generate, tokenize; each lives in Cli/<Verb>Command.cs. Benchmarks, load and soak are
// tools/ActorQuery.Bench; training and evaluation of the default model are tools/ActorQuery.DefaultModel.
return Verbs.Run(args, "serve", new Dictionary<string, Func<string[], int>>
{
    ["serve"] = ServeCommand.Run,
    ["generate"] = GenerateCommand.Run,
    ["tokenize"] = TokenizeCommand.Run,
},
    // help --markdown prints the README's configuration tables from the settings table.
    usage: rest => rest is ["--markdown"] ? Usage.PrintMarkdown() : Usage.Print(),
    elsewhere: "; benchmarks, load and soak: dotnet run --project tools/ActorQuery.Bench -- help;"
               + " training and eval of the default model: dotnet run --project tools/ActorQuery.DefaultModel -- help");
