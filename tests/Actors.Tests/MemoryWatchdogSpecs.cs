using Akka.Actor;
using Akka.TestKit;
using ActorQuery.Actors.Memory;
using ActorQuery.Actors.Tests.Support;
using Xunit.Abstractions;

namespace ActorQuery.Actors.Tests;

public sealed class MemoryWatchdogSpecs(ITestOutputHelper output) : ActorSpec(VirtualTime, output)
{
    private sealed class SettableMemory : IMemoryReader
    {
        public long Resident { get; set; }
        public MemoryReading Read() => new(Resident, Resident / 4);
        public long MachineBytes => 10_000;
    }

    [Fact]
    public void Should_send_cleanup_then_pause_then_resume_as_memory_crosses_each_mark()
    {
        var clock = (TestScheduler)Sys.Scheduler;
        var memory = new SettableMemory { Resident = 1_000 };
        var router = CreateTestProbe();
        var worker = CreateTestProbe();
        var published = CreateTestProbe();
        Sys.EventStream.Subscribe(published, typeof(MemoryStatus));
        // Defaults: limit 70% of the machine (7,000 bytes here), cleanup at 50% of it (3,500), pause at 70% (4,900).
        var watchdog = Sys.ActorOf(MemoryWatchdog.Props(new WatchdogOptions(), memory, router.Ref));
        watchdog.Tell(new RegisterWorker(worker.Ref));
        worker.ExpectMsg<SubscribeWorkerStatus>();
        var first = published.ExpectMsg<MemoryStatus>();
        Assert.Equal((7_000L, 0.5, 0.7, false), (first.LimitBytes, first.CleanupMark, first.PauseMark, first.Paused));

        void Tick(long resident)
        {
            memory.Resident = resident;
            clock.Advance(TimeSpan.FromSeconds(5));
        }

        Tick(3_000); // 43%: below both marks
        worker.ExpectNoMsg(TimeSpan.FromMilliseconds(50));
        router.ExpectNoMsg(TimeSpan.FromMilliseconds(1));

        Tick(4_000); // 57%: cleanup only
        worker.ExpectMsg<CleanupMemory>();
        router.ExpectNoMsg(TimeSpan.FromMilliseconds(50));

        Tick(5_000); // 71%: cleanup and pause
        worker.ExpectMsg<CleanupMemory>();
        Assert.Contains("71%", router.ExpectMsg<PauseAdmission>().Reason);

        Tick(4_000); // between the marks: still paused (resume only under the cleanup mark)
        worker.ExpectMsg<CleanupMemory>();
        router.ExpectNoMsg(TimeSpan.FromMilliseconds(50));

        Tick(3_000); // 43%: resume
        router.ExpectMsg<ResumeAdmission>();
        worker.ExpectNoMsg(TimeSpan.FromMilliseconds(50));

        var last = published.ReceiveWhile(TimeSpan.FromMilliseconds(100), m => m as MemoryStatus).Last()!;
        Assert.Equal((3_000L, 3L, 1L, false), (last.ResidentBytes, last.Cleanups, last.Pauses, last.Paused));
    }

    [Fact]
    public void Should_not_tick_before_its_interval()
    {
        var clock = (TestScheduler)Sys.Scheduler;
        var memory = new SettableMemory { Resident = 1_000 };
        var router = CreateTestProbe();
        Sys.ActorOf(MemoryWatchdog.Props(new WatchdogOptions { LimitBytes = 1_000 }, memory, router.Ref));
        Assert.IsType<PauseAdmission>(router.ReceiveOne(TimeSpan.FromSeconds(3))); // the first reading is immediate (100%)
        memory.Resident = 100;

        clock.Advance(TimeSpan.FromSeconds(4.9));
        router.ExpectNoMsg(TimeSpan.FromMilliseconds(50));
        clock.Advance(TimeSpan.FromSeconds(0.1));
        router.ExpectMsg<ResumeAdmission>();
    }
}
