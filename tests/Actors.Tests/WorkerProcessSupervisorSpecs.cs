using System.Collections.Concurrent;
using Akka.Actor;
using Akka.TestKit;
using ActorQuery.Actors.Cluster;
using ActorQuery.Actors.Routing;
using ActorQuery.Actors.Tests.Support;
using ActorQuery.Actors.Workers;
using Xunit.Abstractions;

namespace ActorQuery.Actors.Tests;

/// <summary>
/// The parent's supervision of its worker processes with fake processes: a process's exit takes its workers out of the
/// routing at once (its member downed, its queries held and resumed), it is started again with backoff, /health's view
/// counts it and names how it ended; a crash loop before any worker was ready is given up; a refused first start ends
/// the node; memory pressure and a request recycle it gracefully.
/// </summary>
public sealed class WorkerProcessSupervisorSpecs(ITestOutputHelper output) : ActorSpec(null, output)
{
    private sealed class FakeProcess(int pid, Address address) : IWorkerProcess
    {
        private readonly TaskCompletionSource<WorkerProcessExit> _exit = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int Pid { get; } = pid;
        public Address Address { get; } = address;
        public Task<WorkerProcessExit> Exited => _exit.Task;
        public long? ResidentBytes => 123 << 20;
        public string? Url => null;
        public int Terminates;
        public void Terminate()
        {
            Interlocked.Increment(ref Terminates);
            End(new WorkerProcessExit(0, null, false, null));
        }
        public void Kill() => End(new WorkerProcessExit(null, 9, false, null));
        public void End(WorkerProcessExit exit) => _exit.TrySetResult(exit);
    }

    private sealed class FakeLauncher(Address address) : IWorkerProcessLauncher
    {
        public ConcurrentQueue<(int Id, FakeProcess Process)> Started { get; } = new();
        private int _pid = 1000;
        public IWorkerProcess Start(int id)
        {
            var p = new FakeProcess(Interlocked.Increment(ref _pid), address);
            Started.Enqueue((id, p));
            return p;
        }
        public FakeProcess Last(int id) => Started.Last(s => s.Id == id).Process;
        public int Count(int id) => Started.Count(s => s.Id == id);
    }

    private readonly ConcurrentQueue<Address> _downed = new();
    private readonly ConcurrentQueue<string> _refused = new();

    private (IActorRef Supervisor, FakeLauncher Launcher, TestProbe Router, TestProbe Directory) Start(WorkerProcessOptions? options = null)
    {
        // The fake processes live at this test system's address, so that a probe can stand in for their workers.
        var launcher = new FakeLauncher(((ExtendedActorSystem)Sys).Provider.DefaultAddress);
        var router = CreateTestProbe();
        var directory = CreateTestProbe();
        var supervisor = Sys.ActorOf(WorkerProcessSupervisor.Props(options ?? new WorkerProcessOptions(), FastWorkers(), launcher,
            router.Ref, directory.Ref, a => _downed.Enqueue(a), r => _refused.Enqueue(r), subscribe: false));
        return (supervisor, launcher, router, directory);
    }

    private static WorkerProcessesView ViewOf(IActorRef supervisor) =>
        supervisor.Ask<WorkerProcessesView>(GetWorkerProcesses.Instance, TimeSpan.FromSeconds(5)).GetAwaiter().GetResult();

    private static WorkerStatus Status(WorkerState state, string? pressure = null) =>
        new() { Worker = "worker-1", Node = "node-a", State = state, MemoryPressure = pressure };

    private void ReportReady(IActorRef supervisor, TestProbe worker, string? pressure = null) =>
        supervisor.Tell(new WorkerLoadPublished(worker.Ref, Status(WorkerState.Ready, pressure)));

    [Fact]
    public void Should_start_each_process_tell_the_router_to_expect_its_workers_and_show_it_ready_once_a_worker_is()
    {
        var (supervisor, launcher, router, _) = Start(new WorkerProcessOptions { Count = 2 });
        AwaitCondition(() => launcher.Started.Count == 2);
        var expected = new[] { router.ExpectMsg<WorkersExpected>(), router.ExpectMsg<WorkersExpected>() };
        Assert.Equal(["worker-process-1", "worker-process-2"], expected.Select(e => e.Source).Order());
        Assert.All(expected, e => Assert.True(e.Expected));
        Assert.All(ViewOf(supervisor).Processes, p => Assert.Equal("starting", p.State));

        ReportReady(supervisor, CreateTestProbe()); // both fakes share the address: the first process matches
        var first = ViewOf(supervisor).Processes[0];
        Assert.Equal("ready", first.State);
        Assert.Equal(["worker-1"], first.Workers);
        Assert.Equal(launcher.Last(1).Pid, first.Pid);
    }

    [Fact]
    public void Should_take_a_dead_process_out_of_the_routing_at_once_hold_its_queries_and_start_it_again()
    {
        var (supervisor, launcher, router, directory) = Start();
        AwaitCondition(() => launcher.Started.Count == 1);
        router.ExpectMsg<WorkersExpected>();
        ReportReady(supervisor, CreateTestProbe());
        var dead = launcher.Last(1);

        dead.End(new WorkerProcessExit(null, 9, false, null));

        // The router first hears that workers are still coming (so that it holds the queries), then loses the old ones.
        var hold = router.ExpectMsg<WorkersExpected>();
        Assert.True(hold.Expected);
        Assert.Contains("SIGKILL", hold.Detail);
        var lost = directory.ExpectMsg<WorkerProcessLost>();
        Assert.Equal(dead.Address, lost.Node);
        Assert.Contains($"pid {dead.Pid}", lost.Reason);
        AwaitCondition(() => _downed.Contains(dead.Address));

        AwaitCondition(() => launcher.Count(1) == 2, TimeSpan.FromSeconds(5));
        var again = router.ExpectMsg<WorkersExpected>();
        Assert.True(again.Expected);
        Assert.Equal(dead.Address, again.Node);
        var view = ViewOf(supervisor).Processes.Single();
        Assert.Equal(1, view.Restarts);
        Assert.Equal(9, view.LastExit!.Signal);
        Assert.False(view.LastExit.OomKilled);
        Assert.Equal(launcher.Last(1).Pid, view.Pid);
    }

    [Fact]
    public void Should_name_the_kernels_oom_killer_as_the_reason_when_it_ended_the_process()
    {
        var (supervisor, launcher, _, directory) = Start();
        AwaitCondition(() => launcher.Started.Count == 1);
        ReportReady(supervisor, CreateTestProbe());

        launcher.Last(1).End(new WorkerProcessExit(null, 9, true, null));

        Assert.Contains("OOM killer", directory.ExpectMsg<WorkerProcessLost>().Reason);
        var exit = ViewOf(supervisor).Processes.Single().LastExit!;
        Assert.True(exit.OomKilled);
        Assert.Contains("killed by the kernel's OOM killer", exit.Reason);
    }

    [Fact]
    public void Should_give_up_a_process_that_ends_before_any_worker_was_ready_and_let_the_router_refuse_its_queries()
    {
        var (supervisor, launcher, router, _) = Start(new WorkerProcessOptions { MaxFailedStarts = 3 });
        for (int n = 1; n <= 3; n++)
        {
            AwaitCondition(() => launcher.Count(1) == n, TimeSpan.FromSeconds(5));
            launcher.Last(1).End(new WorkerProcessExit(1, null, false, "Unhandled exception: boom"));
        }
        AwaitCondition(() => ViewOf(supervisor).Processes.Single().State == "failed", TimeSpan.FromSeconds(5));
        var view = ViewOf(supervisor).Processes.Single();
        Assert.Contains("3 times in a row", view.Error);
        Assert.Contains("boom", view.Error);
        router.FishForMessage(m => m is WorkersExpected { Expected: false }, TimeSpan.FromSeconds(5));
        Thread.Sleep(200);
        Assert.Equal(3, launcher.Count(1));
        Assert.Empty(_refused);
    }

    [Fact]
    public void Should_start_a_process_again_when_every_worker_in_it_failed_and_give_it_up_after_the_failed_starts()
    {
        var (supervisor, launcher, router, _) = Start(new WorkerProcessOptions { MaxFailedStarts = 2 });
        var worker = CreateTestProbe();
        for (int n = 1; n <= 2; n++)
        {
            AwaitCondition(() => launcher.Count(1) == n, TimeSpan.FromSeconds(5));
            var p = launcher.Last(1);
            supervisor.Tell(new WorkerLoadPublished(worker.Ref, Status(WorkerState.Failed) with { Error = "model failed to load 4 times: disk" }));
            AwaitCondition(() => p.Terminates == 1, TimeSpan.FromSeconds(5)); // stopped gracefully (the fake then exits 0)
        }
        AwaitCondition(() => ViewOf(supervisor).Processes.Single().State == "failed", TimeSpan.FromSeconds(5));
        Assert.Contains("every worker in it failed: model failed to load 4 times: disk", ViewOf(supervisor).Processes.Single().Error);
        router.FishForMessage(m => m is WorkersExpected { Expected: false }, TimeSpan.FromSeconds(5));
        Assert.Equal(2, launcher.Count(1));
    }

    [Fact]
    public void Should_end_the_node_with_the_line_of_a_first_start_refused_with_exit_code_2()
    {
        var (supervisor, launcher, _, _) = Start();
        AwaitCondition(() => launcher.Started.Count == 1);

        launcher.Last(1).End(new WorkerProcessExit(2, null, false, "memory plan does not fit: weights 14 GiB > budget 9 GiB"));

        AwaitCondition(() => _refused.Count == 1);
        Assert.Equal("memory plan does not fit: weights 14 GiB > budget 9 GiB", _refused.Single());
        Assert.Equal("failed", ViewOf(supervisor).Processes.Single().State);
        Thread.Sleep(100);
        Assert.Single(launcher.Started);
    }

    [Fact]
    public void Should_recycle_a_process_whose_workers_stay_under_memory_pressure_and_restart_it_at_once()
    {
        var (supervisor, launcher, router, directory) = Start(new WorkerProcessOptions { RecycleAfter = TimeSpan.FromMilliseconds(100) });
        AwaitCondition(() => launcher.Started.Count == 1);
        var worker = CreateTestProbe();
        ReportReady(supervisor, worker);
        var first = launcher.Last(1);

        ReportReady(supervisor, worker, pressure: "memory 640 MiB is 40 MiB above the pause mark");
        Thread.Sleep(50);
        ReportReady(supervisor, worker); // the pressure went: no recycle
        Thread.Sleep(150);
        ReportReady(supervisor, worker, pressure: "memory 640 MiB is 40 MiB above the pause mark");
        Assert.Equal(0, first.Terminates);
        Thread.Sleep(150);
        ReportReady(supervisor, worker, pressure: "memory 700 MiB is 100 MiB above the pause mark");

        var lost = directory.ExpectMsg<WorkerProcessLost>();
        Assert.Contains("memory past its plan", lost.Reason);
        AwaitCondition(() => first.Terminates == 1);
        AwaitCondition(() => launcher.Count(1) == 2, TimeSpan.FromSeconds(2));
        var view = ViewOf(supervisor).Processes.Single();
        Assert.Equal(1, view.Restarts);
        Assert.Contains("recycled", view.LastExit!.Reason);
        Assert.Equal(0, view.LastExit.Code);
        router.FishForMessage(m => m is WorkersExpected { Expected: true, Node: not null } e && e.Detail.Contains("starting"), TimeSpan.FromSeconds(2));
    }

    [Fact]
    public async Task Should_recycle_on_request_by_a_workers_name_and_refuse_an_unknown_id()
    {
        var (supervisor, launcher, _, directory) = Start();
        AwaitCondition(() => launcher.Started.Count == 1);
        ReportReady(supervisor, CreateTestProbe());

        var unknown = await supervisor.Ask<object>(new RecycleWorkerProcess("worker-9", "test"), TimeSpan.FromSeconds(5));
        var refused = Assert.IsType<RecycleRefused>(unknown);
        Assert.True(refused.NotFound);
        Assert.Contains("worker-1", refused.Reason);

        var reply = await supervisor.Ask<object>(new RecycleWorkerProcess("worker-1", "operator"), TimeSpan.FromSeconds(5));
        Assert.Equal(1, Assert.IsType<RecycleStarted>(reply).Process.Id);
        Assert.Contains("operator", directory.ExpectMsg<WorkerProcessLost>().Reason);
        AwaitCondition(() => launcher.Count(1) == 2, TimeSpan.FromSeconds(2));
    }

    [Fact]
    public async Task Should_kill_a_process_that_does_not_stop_within_the_grace_after_sigterm()
    {
        var launcher = new StubbornLauncher(((ExtendedActorSystem)Sys).Provider.DefaultAddress);
        var supervisor = Sys.ActorOf(WorkerProcessSupervisor.Props(new WorkerProcessOptions { TerminateGrace = TimeSpan.FromMilliseconds(100) },
            FastWorkers(), launcher, CreateTestProbe().Ref, CreateTestProbe().Ref, _ => { }, _ => { }, subscribe: false));
        AwaitCondition(() => launcher.Started.Count == 1);
        supervisor.Tell(new WorkerLoadPublished(CreateTestProbe().Ref, Status(WorkerState.Ready)));

        await supervisor.Ask<object>(new RecycleWorkerProcess("1", "test"), TimeSpan.FromSeconds(5));

        AwaitCondition(() => launcher.Started.Count == 2, TimeSpan.FromSeconds(3));
        Assert.Equal(9, ViewOf(supervisor).Processes.Single().LastExit!.Signal);
    }

    /// <summary>Processes that ignore SIGTERM.</summary>
    private sealed class StubbornLauncher(Address address) : IWorkerProcessLauncher
    {
        public ConcurrentQueue<IWorkerProcess> Started { get; } = new();
        public IWorkerProcess Start(int id)
        {
            var p = new Stubborn(address);
            Started.Enqueue(p);
            return p;
        }

        private sealed class Stubborn(Address address) : IWorkerProcess
        {
            private readonly TaskCompletionSource<WorkerProcessExit> _exit = new(TaskCreationOptions.RunContinuationsAsynchronously);
            public int Pid => 42;
            public Address Address { get; } = address;
            public Task<WorkerProcessExit> Exited => _exit.Task;
            public long? ResidentBytes => null;
            public string? Url => null;
            public void Terminate() { }
            public void Kill() => _exit.TrySetResult(new WorkerProcessExit(null, 9, false, null));
        }
    }
}
