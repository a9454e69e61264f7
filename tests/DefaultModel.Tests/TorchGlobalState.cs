namespace ActorQuery.DefaultModel.Tests;

/// <summary>Tests that touch torch's global state (threads, default dtype) run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchGlobalState
{
    public const string Name = "torch global state";
}
