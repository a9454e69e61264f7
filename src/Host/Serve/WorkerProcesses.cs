using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using ActorQuery.Actors.Workers;
using ActorQuery.Contracts;

namespace ActorQuery.Host.Serve;

/// <summary>
/// How a server process and its worker processes agree. A worker process is <c>actorquery serve</c> started by its
/// parent with <see cref="Variable"/> = "ID/COUNT/PARENT_PID" and its whole configuration in environment variables under
/// <see cref="ConfigPrefix"/> (the parent's command line plus the child's own keys: the worker role, its remoting port, the
/// parent as seed), read as the last configuration layer. Its stdin is a pipe from the parent that it never writes to:
/// when the parent ends, the pipe closes and the child stops, so no worker outlives its server.
/// </summary>
internal sealed record WorkerProcessRole(int Id, int Count, int ParentPid)
{
    public const string Variable = "ACTORQUERY_WORKER_PROCESS";
    /// <summary>In a model pool: the bytes of the node's budget this process plans inside (its model's reservation).</summary>
    public const string ShareVariable = "ACTORQUERY_WORKER_SHARE";
    public const string ConfigPrefix = "ACTORQUERY_WORKER__";

    /// <summary>This process's role when its parent started it as a worker process; null otherwise.</summary>
    public static WorkerProcessRole? Current { get; } = Parse(Environment.GetEnvironmentVariable(Variable));

    internal static WorkerProcessRole? Parse(string? value)
    {
        var parts = value?.Split('/');
        return parts is [var id, var count, var parent] && int.TryParse(id, out int i) && int.TryParse(count, out int n)
                                                  && int.TryParse(parent, out int p) && i >= 1 && i <= n
            ? new WorkerProcessRole(i, n, p)
            : null;
    }

    /// <summary>The share of the budget a model pool gave this process; null: it shares the node's budget with the others.</summary>
    public long? ShareBytes { get; } = long.TryParse(Environment.GetEnvironmentVariable(ShareVariable), out long b) && b > 0 ? b : null;

    /// <summary>Resident memory of the parent (the server process), which shares the node's memory limit with its workers.</summary>
    public long ParentResidentBytes() => NativeMemory.ResidentBytesOf(ParentPid) ?? 0;

    /// <summary>Stops <paramref name="stop"/> when the parent's pipe on stdin closes (the parent ended).</summary>
    public static void StopWithParent(Action stop)
    {
        var thread = new Thread(() =>
        {
            try
            {
                using var stdin = Console.OpenStandardInput();
                var buffer = new byte[256];
                while (stdin.Read(buffer) > 0) { }
            }
            catch (IOException) { }
            Serilog.Log.Warning("the parent server process ended (its pipe closed); this worker process stops");
            stop();
        }) { IsBackground = true, Name = "parent-watch" };
        thread.Start();
    }
}

/// <summary>
/// Starts worker processes as children of this server: the same executable and <c>serve</c>, configured through
/// <see cref="WorkerProcessRole"/>'s environment. Each gets a free remoting port on the node's cluster address and joins
/// <paramref name="seedNodes"/>; its console lines are passed on to this process's console, prefixed with its id.
/// </summary>
internal sealed class ChildWorkerProcessLauncher(
    IReadOnlyDictionary<string, string?> commandLine, int count, string systemName, string hostname, string? publicHostname,
    string seedNodes, string node, string logFolder, PooledModel? model = null) : IWorkerProcessLauncher
{
    /// <summary>The pool's own settings: a worker process serves the one model it is started for.</summary>
    private static readonly string[] PoolKeys = ["Models", "ModelsDir", "DefaultModel", "KeepAlive", "Pin", "Serves", "ModelOptions", "ModelFolder",
        "ServedModelName", "KvCacheSize", "Dtype", "Quantize", "WorkersPerNode"];

    public IWorkerProcess Start(int id)
    {
        int port = FreePort(hostname);
        var (file, prefix) = Executable();
        var start = new ProcessStartInfo(file)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in prefix) start.ArgumentList.Add(a);
        start.ArgumentList.Add("serve");
        string section = ServeOptions.Section;
        var config = new Dictionary<string, string?>(
            model is null ? commandLine : commandLine.Where(kv => !PoolKeys.Any(k => kv.Key.StartsWith($"{section}:{k}", StringComparison.OrdinalIgnoreCase))),
            StringComparer.OrdinalIgnoreCase)
        {
            [$"{section}:Cluster:Roles"] = "worker",
            [$"{section}:WorkerProcesses"] = "0",
            [$"{section}:Cluster:Port"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            [$"{section}:Cluster:SeedNodes"] = seedNodes,
            [$"{section}:Urls"] = "http://127.0.0.1:0",
            [$"{section}:Node"] = node,
            [$"{section}:LogFolder"] = Path.Combine(logFolder, $"worker-process-{id}"),
        };
        if (model is not null)
        {
            config[$"{section}:ModelFolder"] = model.Folder;
            config[$"{section}:ServedModelName"] = model.Entry.Name;
            config[$"{section}:KvCacheSize"] = model.KvBytes.ToString(System.Globalization.CultureInfo.InvariantCulture);
            config[$"{section}:Dtype"] = model.Dtype;
            config[$"{section}:WorkersPerNode"] = model.Workers.ToString(System.Globalization.CultureInfo.InvariantCulture);
            start.Environment[WorkerProcessRole.ShareVariable] = model.Entry.ReservationBytes.ToString(System.Globalization.CultureInfo.InvariantCulture);
            // The parent's environment may name the pool's models too (ACTORQUERY__MODELS__0): this process serves one.
            foreach (var key in start.Environment.Keys.Where(k => k.StartsWith("ACTORQUERY__", StringComparison.OrdinalIgnoreCase)
                         && PoolKeys.Any(p => k.StartsWith("ACTORQUERY__" + p.ToUpperInvariant(), StringComparison.OrdinalIgnoreCase))).ToList())
                start.Environment.Remove(key);
        }
        start.Environment[WorkerProcessRole.Variable] = $"{id}/{count}/{Environment.ProcessId}";
        foreach (var (key, value) in config)
            if (value is not null) start.Environment[WorkerProcessRole.ConfigPrefix + key.Replace(":", "__", StringComparison.Ordinal)] = value;
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        // The child's remoting speaks its seeds' scheme: akka.ssl.tcp with cluster TLS (the child reads the same TLS settings),
        // and the member it becomes must match this address.
        var protocol = Address.Parse(seedNodes.Split(',', StringSplitOptions.TrimEntries)[0]).Protocol;
        var address = new Address(protocol, systemName, string.IsNullOrWhiteSpace(publicHostname) ? hostname : publicHostname, port);
        return new ChildWorkerProcess(id, process, address);
    }

    /// <summary>This executable: the apphost when it runs as one, else the muxer with this assembly (dotnet actorquery.dll,
    /// and under a test host).</summary>
    private static (string File, string[] Prefix) Executable()
    {
        var dll = typeof(ServeApp).Assembly.Location;
        var self = Environment.ProcessPath ?? "dotnet";
        var name = Path.GetFileNameWithoutExtension(self);
        if (name == Path.GetFileNameWithoutExtension(dll)) return (self, []);
        if (name == "dotnet") return (self, [dll]);
        return (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } muxer ? muxer : "dotnet", [dll]);
    }

    private static int FreePort(string hostname)
    {
        var listener = new TcpListener(IPAddress.TryParse(hostname, out var ip) ? ip : IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}

/// <summary>A running worker process: its exit as a task (code, signal, and whether the kernel's OOM killer did it),
/// SIGTERM and SIGKILL, and its resident memory from /proc.</summary>
internal sealed class ChildWorkerProcess : IWorkerProcess
{
    private readonly Process _process;
    private readonly TaskCompletionSource<WorkerProcessExit> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Queue<string> _lastErrors = new();
    private readonly long? _oomKillsAtStart;

    public ChildWorkerProcess(int id, Process process, Address address)
    {
        _process = process;
        Address = address;
        _oomKillsAtStart = MemoryLimits.OomKillCount();
        string tag = $"[worker-process {id}] ";
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not { } line) return;
            Console.Out.WriteLine(tag + line);
            if (Url is null && ServingLine.Match(line) is { Success: true } m) Url = m.Groups[1].Value;
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not { } line) return;
            Console.Error.WriteLine(tag + line);
            if (line.Trim().Length == 0) return;
            lock (_lastErrors)
            {
                _lastErrors.Enqueue(line.Trim());
                if (_lastErrors.Count > 40) _lastErrors.Dequeue();
            }
        };
        process.Exited += (_, _) => _ = OnExitedAsync();
        process.Start();
        Pid = process.Id;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    /// <summary>The line a server logs once it listens: "ActorQuery serving MODEL on URL[, URL]; logs in ...".</summary>
    private static readonly System.Text.RegularExpressions.Regex ServingLine = new(@"ActorQuery serving .* on (https?://[^\s,;]+)");

    public int Pid { get; }
    public string? Url { get; private set; }
    public Address Address { get; }
    public Task<WorkerProcessExit> Exited => _exited.Task;
    public long? ResidentBytes => _exited.Task.IsCompleted ? null : NativeMemory.ResidentBytesOf(Pid);

    public void Terminate()
    {
        if (!_exited.Task.IsCompleted) ProcessSignal.Send(Pid, ProcessSignal.Terminate);
    }

    public void Kill()
    {
        try { _process.Kill(entireProcessTree: false); }
        catch (InvalidOperationException) { } // already ended
    }

    private async Task OnExitedAsync()
    {
        await _process.WaitForExitAsync().ConfigureAwait(false); // the rest of stdout and stderr
        int code = _process.ExitCode;
        // .NET reports a child that a signal ended as 128 + the signal.
        int? signal = code is > 128 and < 128 + 65 ? code - 128 : null;
        bool oom = signal == 9 && MemoryLimits.OomKillCount() is { } now && now > (_oomKillsAtStart ?? 0);
        string? detail;
        lock (_lastErrors) detail = Reason(_lastErrors.ToList());
        // A SIGKILL (the kernel, an operator) leaves no last words; whatever it printed before is not why it ended.
        _exited.TrySetResult(new WorkerProcessExit(signal is null ? code : null, signal, oom, signal == 9 ? null : detail));
        _process.Dispose();
    }

    /// <summary>Why a process ended, from its last stderr lines: its one-line refusal (<c>error: ...</c>), the message of a
    /// fail-fast (<c>Process terminated. ...</c>) or an unhandled exception, else its last line that is no stack frame.</summary>
    internal static string? Reason(IReadOnlyList<string> lines)
    {
        for (int i = lines.Count - 1; i >= 0; i--)
        {
            var l = lines[i];
            if (l.StartsWith("error: ", StringComparison.Ordinal)) return l["error: ".Length..];
            if (l.StartsWith("Process terminated. ", StringComparison.Ordinal)) return l["Process terminated. ".Length..];
            if (l.StartsWith("Unhandled exception. ", StringComparison.Ordinal)) return l["Unhandled exception. ".Length..];
        }
        return lines.LastOrDefault(l => !l.StartsWith("at ", StringComparison.Ordinal) && !l.StartsWith("---", StringComparison.Ordinal));
    }
}
