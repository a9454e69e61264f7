using static TorchSharp.torch;

namespace ActorQuery.Inference.Model;

/// <summary>
/// A decoder layer's operations in float32 on an AVX2 CPU, on the hand-written kernels: projections in
/// <see cref="SmallBatchGemm"/> on the <see cref="GemmTeam"/>'s threads, the per-token ops (and the KV write) in
/// <see cref="CpuLayerOps"/>, and every token's attention in <see cref="PagedAttention"/>, which reads the pool in
/// place. A head size that kernel cannot take (not a multiple of 8) attends through <see cref="SdpaAttention"/>.
/// </summary>
internal sealed class CpuKernelLayerOps : ILayerOps
{
    private readonly GemmTeam _team;
    private readonly int _heads, _kvHeads, _headDim;
    private readonly float _eps;
    private readonly Func<StepBatch, Func<Tensor, Tensor, Tensor, Tensor>> _attention;

    public CpuKernelLayerOps(DecoderWeights weights, GemmTeam team)
    {
        _team = team;
        var c = weights.Config;
        _heads = c.NumAttentionHeads;
        _kvHeads = c.NumKeyValueHeads;
        _headDim = c.HeadDim;
        _eps = (float)c.RmsNormEps;
        var device = weights.Device;
        _attention = PagedAttention.Supports(_headDim) ? PagedPlan : b => SdpaAttention.Create(b, device, _heads, _kvHeads, _headDim).Run;
    }

    public Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null) => SmallBatchGemm.Linear(x, weight, bias, _team);

    public Tensor RmsNorm(Tensor x, Tensor weight) => CpuLayerOps.RmsNorm(x, weight, _eps);

    public Tensor SiluMul(Tensor gateUp) => CpuLayerOps.SiluMul(gateUp, _team);

    public ILayerStep BeginStep(StepBatch batch) => new Step(this, batch, _attention(batch));

    /// <summary>Per token, its sequence's block table and how many positions it attends to.</summary>
    private Func<Tensor, Tensor, Tensor, Tensor> PagedPlan(StepBatch batch)
    {
        int n = batch.Items.Sum(i => i.Tokens.Length), o = 0;
        var tables = new int[n][];
        var lengths = new int[n];
        foreach (var it in batch.Items)
        {
            var table = it.Cache.Blocks.ToArray();
            for (int t = 0; t < it.Tokens.Length; t++, o++)
            {
                tables[o] = table;
                lengths[o] = it.Cache.Length + t + 1;
            }
        }
        return (q, keys, values) => PagedAttention.Run(q, keys, values, tables, lengths, batch.BlockSize, _heads, _kvHeads, _headDim, _team);
    }

    public void Dispose() => _team.Dispose();

    private sealed class Step(CpuKernelLayerOps ops, StepBatch batch, Func<Tensor, Tensor, Tensor, Tensor> attention) : ILayerStep
    {
        public Tensor RopeAndStore(Tensor qkv, Tensor poolKeys, Tensor poolValues) =>
            CpuLayerOps.RopeAndStore(qkv, batch.Cos, batch.Sin, poolKeys, poolValues, batch.WriteSlots, ops._heads, ops._kvHeads, ops._headDim);

        public Tensor Attention(Tensor q, Tensor poolKeys, Tensor poolValues) => attention(q, poolKeys, poolValues);
    }
}
