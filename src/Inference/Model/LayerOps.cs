using TorchSharp;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Model;

/// <summary>What every layer of one step shares: the batch, where each item's rows start, each new token's pool
/// slot, and the rotary tables of the tokens' positions.</summary>
/// <param name="Offsets">Row of each item's first token in the step's [N, hidden] activations.</param>
/// <param name="WriteSlots">Pool slot each of the N new tokens' keys and values go to.</param>
/// <param name="Cos">[N, head_dim]: cos of each token's position.</param>
/// <param name="Sin">[N, head_dim], as <paramref name="Cos"/>.</param>
internal sealed record StepBatch(IReadOnlyList<BatchItem> Items, int[] Offsets, long[] WriteSlots, Tensor Cos, Tensor Sin, int BlockSize);

/// <summary>
/// The operations of a decoder layer on one device, chosen once when the model loads (<see cref="LayerOps.For"/>):
/// <see cref="TorchLayerOps"/> (libtorch, any device and dtype) or <see cref="CpuKernelLayerOps"/> (hand-written
/// float32 kernels for AVX2 CPUs). The layer loop calls these without knowing which it has.
/// </summary>
internal interface ILayerOps : IDisposable
{
    /// <summary>x·Wᵀ (+ bias) for x [M, in] and a checkpoint weight W [out, in]: [M, out].</summary>
    Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null);

    /// <summary>RMSNorm in float32 (as Hugging Face does), in the compute dtype: [N, hidden].</summary>
    Tensor RmsNorm(Tensor x, Tensor weight);

    /// <summary>gate_up [N, 2I] (gate, then up) → silu(gate) · up, [N, I].</summary>
    Tensor SiluMul(Tensor gateUp);

    /// <summary>Prepares what every layer of the step shares (slot tensors, attention plan).</summary>
    ILayerStep BeginStep(StepBatch batch);
}

/// <summary>The attention half of a layer for one step, prepared by <see cref="ILayerOps.BeginStep"/>.</summary>
internal interface ILayerStep
{
    /// <summary>From the fused projection qkv [N, (heads + 2·kv_heads)·D]: rotates queries and keys, writes the keys
    /// and values into their slots of the layer's pool ([slots, kv_heads, D]) and returns the queries, [N, heads, D].</summary>
    Tensor RopeAndStore(Tensor qkv, Tensor poolKeys, Tensor poolValues);

    /// <summary>Causal attention of the step's tokens over their sequences' cached keys and values: [N, heads·D].</summary>
    Tensor Attention(Tensor q, Tensor poolKeys, Tensor poolValues);
}

internal static class LayerOps
{
    /// <summary>Whether float32 CPU layers can run on the hand-written kernels: an AVX2/FMA CPU, and the environment
    /// variable ACTORQUERY_GEMM is not "torch" (which keeps libtorch's, for comparisons).</summary>
    public static bool CpuKernelsAvailable(ScalarType dtype, Device device) =>
        SmallBatchGemm.Supported && dtype == ScalarType.Float32 && device.type == DeviceType.CPU
        && Environment.GetEnvironmentVariable("ACTORQUERY_GEMM") != "torch";

    /// <summary>
    /// The backend for <paramref name="weights"/>: the CPU kernels when the loader gave them threads
    /// (<paramref name="kernelThreads"/> &gt; 0) and every weight is contiguous (the kernels read them as plain
    /// arrays); libtorch otherwise. bfloat16 matrices under float32 arithmetic exist only for the kernels.
    /// </summary>
    public static ILayerOps For(DecoderWeights weights, int kernelThreads)
    {
        bool contiguous = weights.lm_head.is_contiguous() && weights.norm.is_contiguous()
                          && weights.layers.All(l => l.All().All(t => t.is_contiguous()));
        if (contiguous && kernelThreads > 0) return new CpuKernelLayerOps(weights, new GemmTeam(kernelThreads));
        if (weights.MatrixDtype != weights.Dtype)
            throw new NotSupportedException($"{DeviceAndDtype.Name(weights.MatrixDtype)} weights under {DeviceAndDtype.Name(weights.Dtype)} " +
                                            "arithmetic need the hand-written CPU kernel (an AVX2/FMA CPU, kernel threads > 0, contiguous weights)");
        return new TorchLayerOps(weights);
    }
}
