using ActorQuery.Inference.Checkpoint;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Model;

/// <summary>
/// Rotary position embedding as Hugging Face's Qwen2/Llama do it (rotate_half convention), with the
/// "linear" and "llama3" frequency scalings. Frequencies are computed in float64 and cast at the end.
/// </summary>
public sealed class RotaryEmbedding
{
    private readonly double[] _invFreq;
    private readonly ScalarType _dtype;
    private readonly Device _device;

    public RotaryEmbedding(ModelConfig c, ScalarType dtype, Device device)
    {
        _dtype = dtype;
        _device = device;
        int half = c.HeadDim / 2;
        _invFreq = new double[half];
        for (int i = 0; i < half; i++) _invFreq[i] = 1.0 / Math.Pow(c.RopeTheta, 2.0 * i / c.HeadDim);
        if (c.RopeScaling is { } s)
        {
            if (s.Type == "linear")
            {
                for (int i = 0; i < half; i++) _invFreq[i] /= s.Factor;
            }
            else if (s.Type == "llama3")
            {
                double lowWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
                double highWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
                for (int i = 0; i < half; i++)
                {
                    double f = _invFreq[i], wavelen = 2 * Math.PI / f;
                    if (wavelen > lowWavelen) f /= s.Factor;                       // low frequencies: scaled
                    else if (wavelen >= highWavelen)                                // medium: smooth blend
                    {
                        double smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                        f = (1 - smooth) * f / s.Factor + smooth * f;
                    }
                    _invFreq[i] = f;                                                // high frequencies: unchanged
                }
            }
        }
        // transformers materialises the inv_freq buffer in the checkpoint's dtype (torch_dtype), so for a
        // bfloat16 checkpoint every Hugging Face forward uses bf16-rounded frequencies. We do the same so that
        // outputs match theirs: with exact frequencies the bf16 fixture's logits drift by up to 8e-3 at position
        // 30, with rounded ones they agree to 1e-5.
        if (c.TorchDtype is "bfloat16") for (int i = 0; i < half; i++) _invFreq[i] = RoundToBFloat16(_invFreq[i]);
        else if (c.TorchDtype is "float16") for (int i = 0; i < half; i++) _invFreq[i] = (double)(Half)_invFreq[i];
    }

    /// <summary>Round-to-nearest-even to bfloat16, as torch's cast does.</summary>
    private static double RoundToBFloat16(double v)
    {
        uint bits = BitConverter.SingleToUInt32Bits((float)v);
        bits = (bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u;
        return BitConverter.UInt32BitsToSingle(bits);
    }

    /// <summary>cos and sin for the given positions: each [N, head_dim] in the compute dtype.</summary>
    public (Tensor Cos, Tensor Sin) For(ReadOnlySpan<int> positions)
    {
        int half = _invFreq.Length, count = positions.Length;
        var angles = new double[count * half * 2];
        for (int t = 0; t < count; t++)
            for (int i = 0; i < half; i++)
            {
                double a = positions[t] * _invFreq[i];
                angles[t * 2 * half + i] = a;
                angles[t * 2 * half + half + i] = a;
            }
        using var ang = tensor(angles, new long[] { count, 2 * half }, ScalarType.Float64);
        using var cos64 = ang.cos();
        using var sin64 = ang.sin();
        return (cos64.to(_dtype, _device), sin64.to(_dtype, _device));
    }

    /// <summary>x: [..., head_dim] with cos/sin broadcastable to it; returns x·cos + rotate_half(x)·sin.</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        long half = x.shape[^1] / 2;
        var x1 = x.narrow(-1, 0, half);
        var x2 = x.narrow(-1, half, half);
        var rotated = cat(new[] { x2.neg(), x1 }, -1);
        return x.mul(cos).add_(rotated.mul_(sin));
    }
}
