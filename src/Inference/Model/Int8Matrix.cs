using System.Runtime.Intrinsics.X86;
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
/// <para>
/// On a CPU with AVX-VNNI a matrix whose N is a multiple of <see cref="TileColumns"/> and whose K is a multiple of
/// <see cref="Group"/> is stored in tiles instead (<see cref="Int8TileGemm"/> multiplies them with <c>vpdpbusd</c>):
/// tile t holds columns 8t..8t+7 as K/32 blocks of 288 bytes, each the 32 values of group g of the eight columns,
/// four consecutive values of one column per 32-bit lane (byte 32s + 4c + b is value 32g + 4s + b of column c), stored
/// as unsigned q + 128, then the eight columns' float32 scales. The Int8 tensor is then [N/8, 9K]: the same bytes as
/// the row layout, told apart by its width (9K, not K + 4K/G).
/// </para>
/// </summary>
public static unsafe class Int8Matrix
{
    /// <summary>Values per scale.</summary>
    public const int Group = 32;

    /// <summary>The group a matrix of <paramref name="k"/> columns is quantized in: <see cref="Group"/>, or the whole row
    /// where k is not a multiple of it.</summary>
    public static int GroupFor(int k) => k % Group == 0 ? Group : k;

    /// <summary>Bytes of one stored row of <paramref name="k"/> values (in either layout: a tile holds eight rows' worth).</summary>
    public static long RowBytes(int k) => k + 4L * (k / GroupFor(k));

    /// <summary>Columns (weight rows) per tile of the tiled layout: the eight int32 lanes of a 256-bit vector.</summary>
    public const int TileColumns = 8;

    /// <summary>Bytes of one group of one tile: 8 × 32 values and 8 scales.</summary>
    internal const int TileGroupBytes = TileColumns * Group + 4 * TileColumns;

    /// <summary>Whether <see cref="Quantize(Tensor)"/> stores tiles where the shape allows: on CPUs with AVX-VNNI and
    /// AVX2/FMA (<c>DOTNET_EnableAVXVNNI=0</c> turns it off for the whole process, and with it the tiles). Tests that load
    /// an engine in rows on such a CPU turn it off for the load.</summary>
    public static bool TilesByDefault { get; internal set; } = TilesSupported;

    /// <summary>Whether this CPU runs the tiles' kernel.</summary>
    public static bool TilesSupported => AvxVnni.IsSupported && Avx2.IsSupported && Fma.IsSupported;

    /// <summary>Whether an [n, k] matrix can be stored in tiles.</summary>
    public static bool CanTile(long n, int k) => n % TileColumns == 0 && k % Group == 0 && k > 0;

    /// <summary>Whether a packed matrix of logical width <paramref name="k"/> is stored in tiles.</summary>
    public static bool IsTiled(Tensor packed, int k) => IsTiled(packed.shape, k);

    /// <summary><see cref="IsTiled(Tensor, int)"/> from a shape already read (a tensor's shape is a native call that
    /// allocates; the per-token paths read it once).</summary>
    internal static bool IsTiled(long[] shape, int k) => k % Group == 0 && shape[1] == 9L * k;

    /// <summary>The number of columns (weight rows, N) of a packed matrix of width <paramref name="k"/>.</summary>
    public static long Columns(Tensor packed, int k) => Columns(packed.shape, k);

    internal static long Columns(long[] shape, int k) => IsTiled(shape, k) ? TileColumns * shape[0] : shape[0];

    /// <summary>Whether <paramref name="weight"/> is a packed int8 matrix.</summary>
    public static bool Is(Tensor weight) => weight.dtype == ScalarType.Int8;

    /// <summary>The group of a packed matrix whose logical width is <paramref name="k"/>; throws when its stored width
    /// does not match.</summary>
    public static int Layout(Tensor packed, int k) => Layout(packed.shape, k);

    private static int Layout(long[] shape, int k)
    {
        if (shape[1] != RowBytes(k) && !IsTiled(shape, k))
            throw new ArgumentException($"an int8 matrix of {shape[1]} bytes per row does not hold {k} columns", "packed");
        return GroupFor(k);
    }

    /// <summary>Quantizes a float32 / bfloat16 / float16 CPU matrix [N, K], in tiles where <see cref="TilesByDefault"/>
    /// and the shape allow.</summary>
    public static Tensor Quantize(Tensor weight) => Quantize(weight, TilesByDefault);

    /// <summary><see cref="Quantize(Tensor)"/> in tiles (<paramref name="tiles"/>, where the shape allows) or rows.
    /// The values and scales are the same in both.</summary>
    internal static Tensor Quantize(Tensor weight, bool tiles)
    {
        if (weight.dim() != 2) throw new ArgumentException("expected a matrix", nameof(weight));
        using var f = weight.to(ScalarType.Float32).contiguous();
        int n = (int)f.shape[0], k = (int)f.shape[1];
        long rowBytes = RowBytes(k);
        nint src = (nint)TensorData.Floats(f);
        if (tiles && CanTile(n, k))
        {
            var tiled = empty(n / TileColumns, 9L * k, ScalarType.Int8);
            nint to = (nint)TensorData.Bytes(tiled);
            Parallel.For(0, n / TileColumns, t =>
            {
                var row = new sbyte[rowBytes];
                fixed (sbyte* q = row)
                {
                    byte* tile = (byte*)to + t * 9L * k;
                    for (int c = 0; c < TileColumns; c++)
                    {
                        QuantizeRow((float*)src + (long)(TileColumns * t + c) * k, k, Group, q);
                        float* scales = (float*)(q + k);
                        for (int g = 0; g < k / Group; g++)
                        {
                            byte* block = tile + (long)g * TileGroupBytes;
                            for (int i = 0; i < Group; i++) block[(i >> 2) * 32 + c * 4 + (i & 3)] = (byte)(q[g * Group + i] + 128);
                            ((float*)(block + TileColumns * Group))[c] = scales[g];
                        }
                    }
                }
            });
            return tiled;
        }
        var packed = empty(n, rowBytes, ScalarType.Int8);
        nint dst = (nint)TensorData.Bytes(packed);
        Parallel.For(0, n, r => QuantizeRow((float*)src + (long)r * k, k, GroupFor(k), (sbyte*)dst + r * rowBytes));
        return packed;
    }

    /// <summary>One row of k values as k bytes and k/g scales at <paramref name="q"/> (the row layout).</summary>
    private static void QuantizeRow(float* w, int k, int g, sbyte* q)
    {
        float* scales = (float*)(q + k);
        for (int g0 = 0, gi = 0; g0 < k; g0 += g, gi++)
        {
            float amax = 0;
            for (int i = g0; i < g0 + g; i++) amax = Math.Max(amax, Math.Abs(w[i]));
            float s = amax / 127f, inv = amax == 0 ? 0 : 127f / amax;
            for (int i = g0; i < g0 + g; i++) q[i] = (sbyte)Math.Clamp(MathF.Round(w[i] * inv), -127, 127);
            scales[gi] = s;
        }
    }

    /// <summary>Rows <paramref name="ids"/> of a packed matrix of width <paramref name="k"/> as float32 [ids, K]: the
    /// embedding lookup of a quantized (possibly tied) embedding. Each value is q·s, the same product the kernels form.</summary>
    public static Tensor Rows(Tensor packed, int k, ReadOnlySpan<long> ids)
    {
        var shape = packed.shape;   // a native call that allocates: read once
        int g = Layout(shape, k);
        bool tiled = IsTiled(shape, k);
        long rowBytes = RowBytes(k), rows = Columns(shape, k);
        var y = empty(ids.Length, k, ScalarType.Float32);
        sbyte* src = (sbyte*)TensorData.Bytes(packed);
        float* dst = TensorData.Floats(y);
        for (int r = 0; r < ids.Length; r++)
        {
            if ((ulong)ids[r] >= (ulong)rows) throw new ArgumentOutOfRangeException(nameof(ids), ids[r], "token id outside the vocabulary");
            float* to = dst + (long)r * k;
            if (tiled)
            {
                int c = (int)(ids[r] % TileColumns);
                byte* tile = (byte*)src + ids[r] / TileColumns * 9L * k;
                for (int gi = 0; gi < k / Group; gi++)
                {
                    byte* block = tile + (long)gi * TileGroupBytes;
                    float s = ((float*)(block + TileColumns * Group))[c];
                    for (int i = 0; i < Group; i++) to[gi * Group + i] = (block[(i >> 2) * 32 + c * 4 + (i & 3)] - 128) * s;
                }
                continue;
            }
            sbyte* q = src + ids[r] * rowBytes;
            float* scales = (float*)(q + k);
            for (int i = 0; i < k; i++) to[i] = q[i] * scales[i / g];
        }
        return y;
    }

    /// <summary>The whole packed matrix as float32 [N, K] (tests and libtorch fallbacks).</summary>
    public static Tensor Dequantize(Tensor packed, int k)
    {
        var ids = new long[Columns(packed, k)];
        for (int i = 0; i < ids.Length; i++) ids[i] = i;
        return Rows(packed, k, ids);
    }
}
