using ActorQuery.Inference.Model;

namespace ActorQuery.Inference.Tests;

/// <summary>The switch of libtorch's cuDNN attention backend, reached through its C++ names (CUDA engines turn it
/// off). It lives in libtorch's CPU library, so its interop is checked here without a GPU.</summary>
[Collection(TorchGlobalState.Name)]
public class CudnnAttentionTests
{
    [Fact]
    public void The_switch_reads_back_what_was_set()
    {
        var before = CudnnAttention.Enabled();
        Assert.NotNull(before);    // libtorch 2.x on Linux exports it: a null here means the names or the ABI changed
        try
        {
            Assert.True(CudnnAttention.Set(false));
            Assert.False(CudnnAttention.Enabled());
            Assert.True(CudnnAttention.Set(true));
            Assert.True(CudnnAttention.Enabled());
        }
        finally { CudnnAttention.Set(before!.Value); }
    }

    [Fact]
    public void The_default_turns_it_off_unless_asked_to_keep_it()
    {
        var before = CudnnAttention.Enabled()!.Value;
        try
        {
            Environment.SetEnvironmentVariable(CudnnAttention.KeepVariable, null);
            CudnnAttention.ApplyDefault();
            Assert.False(CudnnAttention.Enabled());
            Environment.SetEnvironmentVariable(CudnnAttention.KeepVariable, "1");
            CudnnAttention.ApplyDefault();
            Assert.True(CudnnAttention.Enabled());
        }
        finally
        {
            Environment.SetEnvironmentVariable(CudnnAttention.KeepVariable, null);
            CudnnAttention.Set(before);
        }
    }
}
