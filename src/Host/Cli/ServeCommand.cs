using ActorQuery.Host.Serve;
using Serilog;

namespace ActorQuery.Host.Cli;

/// <summary><c>actorquery serve [options]</c>: the HTTP server (the default verb).</summary>
internal static class ServeCommand
{
    public static int Run(string[] args) => Run(args, ServeBackends.Default());

    public static int Run(string[] args, IServeBackend backend)
    {
        var overrides = ServeCli.Parse(args); // CliException: one line, exit 2 (Program)
        Microsoft.AspNetCore.Builder.WebApplication app;
        try { app = ServeApp.Build(overrides, backend); }
        catch (OptionsException e) { throw new CliException(e.Message); }
        catch (ActorQuery.Contracts.MemoryPlanException e) { throw new CliException(e.Message); }
        var outcome = ServeApp.Outcome(app);
        try
        {
            app.Run(); // returns after SIGTERM / Ctrl+C and the graceful shutdown
            if (StartupPlanGuard.StartFailure is { } plan) throw new CliException(plan);
            if (ActorBackend.WorkerStartFailure is { } refused) throw new CliException(refused);
            return outcome.ExitCode; // non-zero when the node was downed or removed from the cluster
        }
        catch (CliException) { throw; }
        catch (Exception e)
        {
            Log.Fatal(e, "serve stopped: {Reason}", e.Message);
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
        finally
        {
            Log.CloseAndFlush();
        }
    }
}
