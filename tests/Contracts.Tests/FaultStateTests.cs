namespace ActorQuery.Contracts.Tests;

/// <summary>Faults armed while a worker runs (POST /admin/faults): a hang counts from when it is armed and disarming it lets
/// the hung step return; disarming the leak frees what it holds.</summary>
public sealed class FaultStateTests
{
    [Fact]
    public async Task A_hang_is_armed_counted_from_now_and_disarming_it_lets_the_hung_step_return()
    {
        using var state = new FaultState();
        for (int i = 0; i < 5; i++) state.NextStep();

        var armed = state.Arm(new LiveFaults { HangAtStep = 2 });
        Assert.Equal(7, armed.HangAtStep);

        var hung = Task.Run(state.Hang);
        Assert.NotSame(hung, await Task.WhenAny(hung, Task.Delay(100))); // still hung
        state.Arm(LiveFaults.None);
        await hung.WaitAsync(TimeSpan.FromSeconds(5)); // returns once the hang is disarmed
    }

    [Fact]
    public void Disarming_the_leak_frees_what_it_holds_and_keeps_no_other_fault()
    {
        using var state = new FaultState(new LiveFaults { StepDelayMs = 5 });
        state.Arm(new LiveFaults { LeakBytesPerStep = 1 << 20, StepDelayMs = 5 });
        state.LeakStep();
        state.LeakStep();
        Assert.Equal(2L << 20, state.LeakedBytes);

        state.Arm(new LiveFaults { StepDelayMs = 5 });

        Assert.Equal(0, state.LeakedBytes);
        Assert.Equal(new LiveFaults { StepDelayMs = 5 }, state.Live);
    }
}
