using System.Diagnostics;

namespace ActorQuery.Host.Tests;

/// <summary>
/// The Node.js clients of the matrix: tests/node-clients/ holds a package.json that pins the official <c>openai</c>
/// client, the Vercel AI SDK (<c>ai</c>, <c>@ai-sdk/openai</c>) and zod, and one script per client that asserts the
/// same three things as the .NET tests. The test installs the packages (npm install into that folder's gitignored
/// node_modules, once per run) and runs each script with the server's base URL. Skipped, with the reason, where node or
/// npm is not installed.
/// </summary>
public sealed partial class ToolClientMatrixTests
{
    private static readonly string NodeClients = Path.Combine(RepoFixtures.Root, "tests", "node-clients");
    private static readonly Lazy<Task<(int Code, string Output)>> Install = new(() => RunAsync("npm", ["install", "--no-audit", "--no-fund"], null, TimeSpan.FromMinutes(3)));

    [SkippableTheory]
    [InlineData("openai-client.mjs", "tagged")]
    [InlineData("openai-client.mjs", "llama")]
    [InlineData("vercel-ai.mjs", "tagged")]
    [InlineData("vercel-ai.mjs", "llama")]
    public async Task Node_client_calls_tools_validly_streams_alike_and_answers_a_tool_result(string script, string format)
    {
        Skip.If(OnPath("node") is null, "node is not installed (apt-get install nodejs npm)");
        Skip.If(OnPath("npm") is null, "npm is not installed (apt-get install npm)");
        var (installed, installLog) = await Install.Value;
        Assert.True(installed == 0, $"npm install in {NodeClients} failed:\n{installLog}");

        var (code, output) = await RunAsync("node", [script], Server(format).Url + "/v1", TimeSpan.FromSeconds(90));

        Assert.True(code == 0, $"node {script} against the {format} server exited {code}:\n{output}");
        Assert.Contains("\"ok\":true", output);
    }

    private static string? OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
        .Select(dir => Path.Combine(dir, program)).FirstOrDefault(File.Exists);

    private static async Task<(int Code, string Output)> RunAsync(string program, string[] args, string? baseUrl, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(OnPath(program)!, args)
        {
            WorkingDirectory = NodeClients,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        if (baseUrl is not null) start.Environment["ACTORQUERY_BASE_URL"] = baseUrl;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try { await process.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            return (-1, $"timed out after {timeout}\n{await stdout}\n{await stderr}");
        }
        return (process.ExitCode, (await stdout) + (await stderr));
    }
}
