using System.Runtime.CompilerServices;

namespace ActorQuery.Inference.Tests;

internal static class TestSetup
{
    /// <summary>
    /// One intra-op thread for the tiny fixture models: their ops are too small to split, and test
    /// assemblies run side by side, where OpenMP's spinning threads slow each step by an order of magnitude.
    /// </summary>
    [ModuleInitializer]
    internal static void OneTorchThread() => TorchSharp.torch.set_num_threads(1);
}
