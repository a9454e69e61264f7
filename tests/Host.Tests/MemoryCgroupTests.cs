using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace ActorQuery.Host.Tests;

/// <summary>
/// The server inside a real memory cgroup, as a container runs it: `actorquery serve` as a child process under
/// shared/tools/in-memory-limit.sh, which gives it a cgroup of its own (v2 or v1) and reports the kernel's OOM kills.
/// Skipped, with the reason, where the tool or a writable memory cgroup is missing (not root, no cgroup mount).
/// The cases with the full-size shapes and load are scripts/memory-limits.sh.
/// </summary>
[Collection(ServeCollection.Name)]
public sealed class MemoryCgroupTests
{
    private static readonly string Tool = Path.Combine(RepoFixtures.Root, "..", "shared", "tools", "in-memory-limit.sh");
    private static readonly string Server = Path.Combine(AppContext.BaseDirectory, "actorquery.dll");

    [SkippableFact]
    public async Task A_kv_pool_larger_than_the_cgroup_is_refused_at_start_with_exit_code_2_and_no_kill()
    {
        SkipUnlessCgroups();
        var run = await RunInCgroupAsync("1800M", TimeSpan.FromSeconds(120), null,
            "--model", Path.Combine(RepoFixtures.Root, "models", "shapes", "qwen2.5-0.5b"), "--dummy-weights", "--dtype", "bfloat16",
            "--kv-cache-size", "6GiB", "--urls", "http://127.0.0.1:0");

        Assert.True(run.ExitCode == 2, $"exit code {run.ExitCode}, expected 2; stderr:\n{run.Stderr}");
        var error = run.Stderr.Split('\n').Single(l => l.StartsWith("error:", StringComparison.Ordinal));
        Assert.Contains("KV", error);
        Assert.Contains("cgroup limit 1.76 GiB", error); // the budget's source and size, as the user set them
        Assert.Equal(0, run.OomKills);
    }

    [SkippableFact]
    public async Task In_a_cgroup_the_server_plans_within_the_cgroups_limit_and_answers()
    {
        SkipUnlessCgroups();
        const long limit = 1200L * 1024 * 1024;
        int port = FreePort();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(30) };
        JsonElement memory = default;
        string? answer = null;
        var run = await RunInCgroupAsync("1200M", TimeSpan.FromSeconds(180), async () =>
            {
                await Eventually.Until(async () =>
                    {
                        try { using var r = await http.GetAsync("/health/ready"); return (int)r.StatusCode; }
                        catch (HttpRequestException) { return 0; }
                    }, status => status == 200, TimeSpan.FromSeconds(120), "the server in the cgroup to be ready", s => s.ToString(),
                    interval: TimeSpan.FromMilliseconds(200));
                using var reply = await http.PostAsync("/v1/completions", new StringContent(
                    """{"prompt":"What is 37 + 58?","max_tokens":8,"temperature":0}""", Encoding.UTF8, "application/json"));
                answer = $"{(int)reply.StatusCode} {await reply.Content.ReadAsStringAsync()}";
                // The model runs in the server's worker process (the default): its own plan is in worker_processes.
                var node = JsonDocument.Parse(await http.GetStringAsync("/memory")).RootElement;
                var process = node.GetProperty("worker_processes")[0];
                Assert.True(process.GetProperty("memory").ValueKind == JsonValueKind.Object, process.ToString());
                memory = process.GetProperty("memory").Clone();
            },
            "--model", DefaultModelServer.ModelFolder, "--device", "cpu", "--urls", $"http://127.0.0.1:{port}");

        Assert.True(run.OomKills == 0 && run.ExitCode == 0, $"exit code {run.ExitCode}, OOM kills {run.OomKills}; answer {answer}; stderr:\n{run.Stderr}");
        Assert.StartsWith("200 ", answer);
        var limitReport = memory.GetProperty("limit");
        Assert.Equal((limit, "cgroup limit"), (limitReport.GetProperty("bytes").GetInt64(), limitReport.GetProperty("source").GetString()));
        // The KV pool is what the plan leaves: sized to the cgroup, and the whole plan within limit × utilization.
        var plan = memory.GetProperty("plan");
        long kvPool = plan.GetProperty("kv_pool_bytes").GetInt64();
        Assert.True(kvPool > 0, memory.ToString());
        Assert.InRange(plan.GetProperty("planned_bytes").GetInt64(), kvPool, (long)(limit * 0.9) + 1);
        Assert.True(memory.GetProperty("kv").GetProperty("capacity_tokens").GetInt64() > 0);
        Assert.Equal("normal", memory.GetProperty("watchdog").GetProperty("state").GetString());
    }

    private static void SkipUnlessCgroups()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "memory cgroups are Linux's");
        Skip.IfNot(File.Exists(Tool), $"no cgroup tool at {Tool} (shared/tools/in-memory-limit.sh)");
        Skip.IfNot(Environment.UserName == "root", "creating a memory cgroup needs root");
        bool v2 = File.Exists("/sys/fs/cgroup/cgroup.controllers") && File.ReadAllText("/sys/fs/cgroup/cgroup.controllers").Contains("memory");
        Skip.IfNot(v2 || Directory.Exists("/sys/fs/cgroup/memory"), "no memory cgroup controller is mounted");
    }

    private sealed record CgroupRun(int ExitCode, int OomKills, string Stderr);

    /// <summary>Runs <c>serve ARGS</c> in a cgroup of <paramref name="limit"/>; while it runs, <paramref name="whileRunning"/>
    /// (then SIGTERM, a graceful stop); without it, waits for the server to exit by itself.</summary>
    private static async Task<CgroupRun> RunInCgroupAsync(string limit, TimeSpan timeout, Func<Task>? whileRunning, params string[] args)
    {
        var logs = Directory.CreateTempSubdirectory("aq-cgroup-").FullName;
        var start = new ProcessStartInfo("bash")
        {
            RedirectStandardError = true, RedirectStandardOutput = true, WorkingDirectory = AppContext.BaseDirectory,
        };
        foreach (var a in new[] { Tool, limit, "dotnet", Server, "serve", "--log-folder", logs }.Concat(args)) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stderr = new StringBuilder();
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
        process.OutputDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            if (whileRunning is not null)
            {
                try { await whileRunning(); }
                finally
                {
                    // SIGTERM to the server itself (the tool's child), so that the tool waits for its graceful stop and
                    // reports its exit status and the cgroup's OOM kills after it.
                    using var stop = Process.Start("pkill", ["-TERM", "-P", process.Id.ToString()]);
                    await stop!.WaitForExitAsync();
                }
            }
            await process.WaitForExitAsync(cts.Token);
        }
        catch
        {
            // The tool forwards SIGTERM to the server; a SIGKILL to bash alone would leave the server and its cgroup.
            using var kill = Process.Start("pkill", ["-KILL", "-P", process.Id.ToString()]);
            process.Kill(entireProcessTree: true);
            throw;
        }
        process.WaitForExit(); // the redirected streams are read to their end
        string text;
        lock (stderr) text = stderr.ToString();
        var report = text.Split('\n').LastOrDefault(l => l.StartsWith("in-memory-limit:", StringComparison.Ordinal))
                     ?? throw new InvalidOperationException($"in-memory-limit.sh printed no report; stderr:\n{text}");
        var words = report.Split(' ');
        int kills = int.Parse(words[Array.IndexOf(words, "oom_kill") + 1]);
        return new CgroupRun(process.ExitCode, kills, text);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
