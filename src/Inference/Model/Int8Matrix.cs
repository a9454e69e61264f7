using static TorchSharp.torch;

namespace ActorQuery.Inference.Model;

/// <summary>
/// int8 weight matrices (<c>--quantize int8</c>): each row of a [N, K] matrix is cut into groups of
/// <see cref="Group"/> values (the whole row when K is not a multiple of it), and each group is stored as K/G signed
/// bytes q = round(w / s), |q| ≤ 127, with its float32 scale s = max|w| / 127 (symmetric: no zero point, so that a
/// product is q·s·x). A row is stored as its K bytes followed by its K/G scales, so that a block of rows is one
/// contiguous read; the whole matrix is one Int8 tensor of shape [N, K + 4·K/G], which every holder of a weight tensor
/// (the loader, the byte count, dispose) treats like any other. The kernels tell the format by the dtype and recover
/// K and G from the activations' width (<see cref="Layout"/>).
/// <para>
/// Groups of 32 (as llama.cpp's q8_0) rather than one scale per row, measured on the reference fixtures (mean KL
/// divergence from Hugging Face's float32 next-token distributions): 2.9e-4 / 2.4e-4 / 4.1e-4 with groups of 32
/// against 3.6e-4 / 3.0e-4 / 6.1e-4 with one scale per row, on random weights, which have none of the outlier
/// channels of trained ones that a per-row scale suffers from most. The scales cost 12.5% more bytes than per-row
/// ones (docs/performance.md has the figures).
/// </para>
/// </summary>
public static unsafe class Int8Matrix
{
    /// <summary>Values per scale.</summary>
    public const int Group = 32;

    /// <summary>The group a matrix of <paramref name="k"/> columns is quantized in: <see cref="Group"/>, or the whole row
    /// where k is not a multiple of it.</summary>
    public static int GroupFor(int k) => k % Group == 0 ? Group : k;

    /// <summary>Bytes of one stored row of <paramref name="k"/> values.</summary>
    public static long RowBytes(int k) => k + 4L * (k / GroupFor(k));

    /// <summary>Whether <paramref name="weight"/> is a packed int8 matrix.</summary>
    public static bool Is(Tensor weight) => weight.dtype == ScalarType.Int8;

    /// <summary>The group of a packed matrix whose logical width is <paramref name="k"/>; throws when its stored width
    /// does not match.</summary>
    public static int Layout(Tensor packed, int k)
    {
        if (packed.shape[1] != RowBytes(k))
            throw new ArgumentException($"an int8 matrix of {packed.shape[1]} bytes per row does not hold {k} columns", nameof(packed));
        return GroupFor(k);
    }

    /// <summary>Quantizes a float32 / bfloat16 / float16 CPU matrix [N, K].</summary>
    public static Tensor Quantize(Tensor weight)
    {
        if (weight.dim() != 2) throw new ArgumentException("expected a matrix", nameof(weight));
        using var f = weight.to(ScalarType.Float32).contiguous();
        int n = (int)f.shape[0], k = (int)f.shape[1], g = GroupFor(k);
        long rowBytes = RowBytes(k);
        var packed = empty(n, rowBytes, ScalarType.Int8);
        nint src = (nint)TensorData.Floats(f), dst = (nint)TensorData.Bytes(packed);
        Parallel.For(0, n, r =>
        {
            float* w = (float*)src + (long)r * k;
            sbyte* q = (sbyte*)dst + r * rowBytes;
            float* scales = (float*)(q + k);
            for (int g0 = 0, gi = 0; g0 < k; g0 += g, gi++)
            {
                float amax = 0;
                for (int i = g0; i < g0 + g; i++) amax = Math.Max(amax, Math.Abs(w[i]));
                float s = amax / 127f, inv = amax == 0 ? 0 : 127f / amax;
                for (int i = g0; i < g0 + g; i++) q[i] = (sbyte)Math.Clamp(MathF.Round(w[i] * inv), -127, 127);
                scales[gi] = s;
            }
        });
        return packed;
    }

    /// <summary>Rows <paramref name="ids"/> of a packed matrix of width <paramref name="k"/> as float32 [ids, K]: the
    /// embedding lookup of a quantized (possibly tied) embedding. Each value is q·s, the same product the kernels form.</summary>
    public static Tensor Rows(Tensor packed, int k, ReadOnlySpan<long> ids)
    {
        int g = Layout(packed, k);
        long rowBytes = RowBytes(k), rows = packed.shape[0];   // shape is a native call that allocates: read once
        var y = empty(ids.Length, k, ScalarType.Float32);
        sbyte* src = (sbyte*)TensorData.Bytes(packed);
        float* dst = TensorData.Floats(y);
        for (int r = 0; r < ids.Length; r++)
        {
            if ((ulong)ids[r] >= (ulong)rows) throw new ArgumentOutOfRangeException(nameof(ids), ids[r], "token id outside the vocabulary");
            sbyte* q = src + ids[r] * rowBytes;
            float* scales = (float*)(q + k);
            for (int i = 0; i < k; i++) dst[(long)r * k + i] = q[i] * scales[i / g];
        }
        return y;
    }

    /// <summary>The whole packed matrix as float32 [N, K] (tests and libtorch fallbacks).</summary>
    public static Tensor Dequantize(Tensor packed, int k)
    {
        var ids = new long[packed.shape[0]];
        for (int i = 0; i < ids.Length; i++) ids[i] = i;
        return Rows(packed, k, ids);
    }
}
