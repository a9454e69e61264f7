using TorchSharp;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Tests;

/// <summary>Proves the native libtorch stack loads on this machine (the build's GLIBCXX patch works).</summary>
[Collection(TorchGlobalState.Name)]
public class TorchSharpLoadTests
{
    [Fact]
    public void Should_load_libtorch_and_multiply_matrices()
    {
        using var a = tensor(new float[] { 1, 2, 3, 4 }, new long[] { 2, 2 });
        using var b = tensor(new float[] { 5, 6, 7, 8 }, new long[] { 2, 2 });
        using var c = matmul(a, b);
        Assert.Equal(new float[] { 19, 22, 43, 50 }, c.data<float>().ToArray());
    }
}
