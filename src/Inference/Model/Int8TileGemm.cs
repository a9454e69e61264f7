using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ActorQuery.Inference.Model;

/// <summary>
/// y = x·Wᵀ + b for an int8 weight stored in tiles (<see cref="Int8Matrix"/>), with integer dot products on AVX-VNNI
/// (<c>vpdpbusd</c>: 32 byte products summed into eight int32 lanes per instruction, twice the multiply-adds of a
/// 512-bit float32 FMA; measured here, both at 6.5 G instructions a second on one core).
/// <para>
/// The rows of x are quantized first, as llama.cpp's q8_0 activations: per group of 32 values, q = round(x / s) with
/// s = max|x| / 127, and c = −128·Σq. A tile's lane holds four consecutive values of one column as unsigned w + 128,
/// so one instruction adds four products to each of eight columns, and Σ(w + 128)·q + c = Σw·q exactly. After a
/// group's eight instructions the int32 sums become float32 and are added, scaled by the column's and the row's scales,
/// into the column's float32 sum: acc = fma(float(Σw·q), s_w·s_x, acc), group by group in order, then the bias. That is
/// each output element's one order whatever the number of rows or threads, so a sequence's logits do not depend on
/// which others share its step.
/// </para>
/// <para>
/// Written by hand for the same reason as <see cref="SmallBatchGemm"/> (libtorch has no int8 matrix product on the
/// CPU for these shapes); .NET 10 has AVX-VNNI only at 256 bits, not AVX-512 VNNI.
/// </para>
/// </summary>
internal static unsafe class Int8TileGemm
{
    private const int G = Int8Matrix.Group, T = Int8Matrix.TileColumns, GroupBytes = Int8Matrix.TileGroupBytes;

    /// <summary>Rows of x quantized per group of 32: <paramref name="Values"/> [m, k] signed bytes, and per row and
    /// group its scale (<paramref name="Scales"/> [m, k/32]) and −128·Σq (<paramref name="Offsets"/>).</summary>
    internal readonly record struct QuantizedRows(nint Values, nint Scales, nint Offsets, int Rows, int K)
    {
        public sbyte* Row(int r) => (sbyte*)Values + (long)r * K;
        public float* ScalesOf(int r) => (float*)Scales + (long)r * (K / G);
        public int* OffsetsOf(int r) => (int*)Offsets + (long)r * (K / G);
    }

    [ThreadStatic] private static byte[]? _quantized;

    /// <summary>Quantizes x [m, k] (k a multiple of 32) into this thread's buffer, valid until its next call.</summary>
    internal static QuantizedRows Quantize(float* x, int m, int k)
    {
        int groups = k / G;
        long bytes = (long)m * k + 8L * m * groups;
        if (_quantized is null || _quantized.LongLength < bytes) _quantized = GC.AllocateUninitializedArray<byte>((int)bytes, pinned: true);
        byte* buf = (byte*)Unsafe.AsPointer(ref _quantized[0]);   // pinned object heap: never moves
        var q = new QuantizedRows((nint)buf, (nint)(buf + (long)m * k), (nint)(buf + (long)m * k + 4L * m * groups), m, k);
        for (int r = 0; r < m; r++)
        {
            float* xr = x + (long)r * k;
            sbyte* qr = q.Row(r);
            float* sr = q.ScalesOf(r);
            int* orow = q.OffsetsOf(r);
            for (int g = 0; g < groups; g++)
            {
                float* v = xr + g * G;
                Vector256<float> a = Vector256.Load(v), b = Vector256.Load(v + 8), c = Vector256.Load(v + 16), d = Vector256.Load(v + 24);
                var amax = Vector256.Max(Vector256.Max(Vector256.Abs(a), Vector256.Abs(b)), Vector256.Max(Vector256.Abs(c), Vector256.Abs(d)));
                var h = Vector128.Max(amax.GetLower(), amax.GetUpper());
                float max = MathF.Max(MathF.Max(h[0], h[1]), MathF.Max(h[2], h[3]));
                var inv = Vector256.Create(max == 0 ? 0f : 127f / max);
                // vcvtps2dq rounds to nearest, ties to even; |x·127/max| ≤ 127 up to rounding, so no clamp is needed.
                Vector256<int> ia = Avx.ConvertToVector256Int32(a * inv), ib = Avx.ConvertToVector256Int32(b * inv),
                               ic = Avx.ConvertToVector256Int32(c * inv), id = Avx.ConvertToVector256Int32(d * inv);
                Vector256.Narrow(Vector256.Narrow(ia, ib), Vector256.Narrow(ic, id)).Store(qr + g * G);
                sr[g] = max / 127f;
                orow[g] = -128 * Vector256.Sum(ia + ib + ic + id);
            }
        }
        return q;
    }

    /// <summary>Output tiles [t0, t1) of y [m, n] for every quantized row: four rows and two tiles at a time (eight
    /// int32 and eight float32 accumulators, each weight vector loaded once for four rows), one row at a time for the
    /// last rows (four tiles at a time when there is only one row), and a last odd tile against itself into a scratch
    /// tile.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // see SmallBatchGemm.ChunkColumns
    internal static void Tiles(in QuantizedRows x, int r0, int m, byte* w, int k, int n, float* y, float* bias, int t0, int t1)
    {
        long tileBytes = 9L * k;
        float* scratch = stackalloc float[4 * T];
        if (m == 1)
        {
            // One row only streams the weights: four tiles at a time (four streams, a 64-byte line of each per step),
            // the next four fetched group by group meanwhile. Against two tiles at a time with the same prefetch,
            // 40.9 against 35.3 GB/s over a model's worth of int8 matrices (medians of 5, same process).
            for (; t0 + 4 <= t1; t0 += 4)
            {
                byte* wa = w + t0 * tileBytes;
                Block1x4(x, r0, wa, tileBytes, k, y + t0 * T, bias == null ? null : bias + t0 * T, t0 + 8 <= t1 ? wa + 4 * tileBytes : null);
            }
        }
        for (int t = t0; t < t1; t += 2)
        {
            bool pair = t + 1 < t1;
            byte* wa = w + t * tileBytes, wb = pair ? wa + tileBytes : wa;
            float* ba = bias == null ? null : bias + t * T, bb = bias == null || !pair ? null : ba + T;
            int i = 0;
            for (; i + 4 <= m; i += 4)
            {
                float* ya = y + (long)i * n + t * T;
                if (pair) Block4x2(x, r0 + i, wa, wb, k, ya, n, ya + T, n, ba, bb);
                else Block4x2(x, r0 + i, wa, wb, k, ya, n, scratch, T, ba, null);
            }
            for (; i < m; i++)
            {
                float* ya = y + (long)i * n + t * T;
                Block1x2(x, r0 + i, wa, wb, k, ya, pair ? ya + T : scratch, ba, bb);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> Four(sbyte* p) => Vector256.Create(*(int*)p).AsSByte();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Dot(Vector256<int> acc, Vector256<byte> w, Vector256<sbyte> x) => AvxVnni.MultiplyWideningAndAdd(acc, w, x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* y, Vector256<float> acc, float* bias)
    {
        if (bias != null) acc += Vector256.Load(bias);
        acc.Store(y);
    }

    /// <summary>Four rows of x (from <paramref name="r"/>) against tiles <paramref name="wa"/> and <paramref name="wb"/>:
    /// the first tile's columns at <paramref name="ya"/> (rows <paramref name="lda"/> apart), the second's at
    /// <paramref name="yb"/> (rows <paramref name="ldb"/> apart: a scratch tile when it repeats the first).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Block4x2(in QuantizedRows x, int r, byte* wa, byte* wb, int k, float* ya, int lda, float* yb, int ldb, float* ba, float* bb)
    {
        Vector256<float> f0a = default, f0b = default, f1a = default, f1b = default, f2a = default, f2b = default, f3a = default, f3b = default;
        sbyte* q0 = x.Row(r), q1 = q0 + k, q2 = q1 + k, q3 = q2 + k;
        float* s0 = x.ScalesOf(r), s1 = s0 + k / G, s2 = s1 + k / G, s3 = s2 + k / G;
        int* o0 = x.OffsetsOf(r), o1 = o0 + k / G, o2 = o1 + k / G, o3 = o2 + k / G;
        for (int g = 0; g < k / G; g++, wa += GroupBytes, wb += GroupBytes, q0 += G, q1 += G, q2 += G, q3 += G)
        {
            Vector256<int> i0a = Vector256.Create(o0[g]), i1a = Vector256.Create(o1[g]), i2a = Vector256.Create(o2[g]), i3a = Vector256.Create(o3[g]);
            Vector256<int> i0b = i0a, i1b = i1a, i2b = i2a, i3b = i3a;
            for (int s = 0; s < 8; s++)
            {
                var a = Vector256.Load(wa + 32 * s);
                var b = Vector256.Load(wb + 32 * s);
                var v = Four(q0 + 4 * s); i0a = Dot(i0a, a, v); i0b = Dot(i0b, b, v);
                v = Four(q1 + 4 * s); i1a = Dot(i1a, a, v); i1b = Dot(i1b, b, v);
                v = Four(q2 + 4 * s); i2a = Dot(i2a, a, v); i2b = Dot(i2b, b, v);
                v = Four(q3 + 4 * s); i3a = Dot(i3a, a, v); i3b = Dot(i3b, b, v);
            }
            var sa = Vector256.Load((float*)(wa + T * G));
            var sb = Vector256.Load((float*)(wb + T * G));
            var c = Vector256.Create(s0[g]);
            f0a = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i0a), sa * c, f0a); f0b = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i0b), sb * c, f0b);
            c = Vector256.Create(s1[g]);
            f1a = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i1a), sa * c, f1a); f1b = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i1b), sb * c, f1b);
            c = Vector256.Create(s2[g]);
            f2a = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i2a), sa * c, f2a); f2b = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i2b), sb * c, f2b);
            c = Vector256.Create(s3[g]);
            f3a = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i3a), sa * c, f3a); f3b = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i3b), sb * c, f3b);
        }
        Store(ya, f0a, ba); Store(yb, f0b, bb);
        Store(ya + lda, f1a, ba); Store(yb + ldb, f1b, bb);
        Store(ya + 2 * lda, f2a, ba); Store(yb + 2 * ldb, f2b, bb);
        Store(ya + 3 * lda, f3a, ba); Store(yb + 3 * ldb, f3b, bb);
    }

    /// <summary>One row of x against the four tiles from <paramref name="w0"/>, fetching the four at
    /// <paramref name="next"/> (none when null) as it goes.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Block1x4(in QuantizedRows x, int r, byte* w0, long tileBytes, int k, float* y, float* bias, byte* next)
    {
        Vector256<float> f0 = default, f1 = default, f2 = default, f3 = default;
        byte* w1 = w0 + tileBytes, w2 = w1 + tileBytes, w3 = w2 + tileBytes;
        sbyte* q = x.Row(r);
        float* sc = x.ScalesOf(r);
        int* off = x.OffsetsOf(r);
        for (int g = 0; g < k / G; g++, w0 += GroupBytes, w1 += GroupBytes, w2 += GroupBytes, w3 += GroupBytes, q += G)
        {
            if (next != null)
            {
                for (int l = 0; l < GroupBytes; l += 64)
                {
                    Sse.Prefetch0(next + l); Sse.Prefetch0(next + tileBytes + l);
                    Sse.Prefetch0(next + 2 * tileBytes + l); Sse.Prefetch0(next + 3 * tileBytes + l);
                }
                next += GroupBytes;
            }
            Vector256<int> i0 = Vector256.Create(off[g]), i1 = i0, i2 = i0, i3 = i0;
            for (int s = 0; s < 8; s++)
            {
                var v = Four(q + 4 * s);
                i0 = Dot(i0, Vector256.Load(w0 + 32 * s), v);
                i1 = Dot(i1, Vector256.Load(w1 + 32 * s), v);
                i2 = Dot(i2, Vector256.Load(w2 + 32 * s), v);
                i3 = Dot(i3, Vector256.Load(w3 + 32 * s), v);
            }
            var c = Vector256.Create(sc[g]);
            f0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i0), Vector256.Load((float*)(w0 + T * G)) * c, f0);
            f1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i1), Vector256.Load((float*)(w1 + T * G)) * c, f1);
            f2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i2), Vector256.Load((float*)(w2 + T * G)) * c, f2);
            f3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i3), Vector256.Load((float*)(w3 + T * G)) * c, f3);
        }
        Store(y, f0, bias); Store(y + T, f1, bias == null ? null : bias + T);
        Store(y + 2 * T, f2, bias == null ? null : bias + 2 * T); Store(y + 3 * T, f3, bias == null ? null : bias + 3 * T);
    }

    /// <summary>One row of x against tiles <paramref name="wa"/> and <paramref name="wb"/>: the last rows of a batch,
    /// and the last one to three tiles of a chunk when there is only one row (Block1x4 takes the rest).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Block1x2(in QuantizedRows x, int r, byte* wa, byte* wb, int k, float* ya, float* yb, float* ba, float* bb)
    {
        Vector256<float> fa = default, fb = default;
        sbyte* q = x.Row(r);
        float* sc = x.ScalesOf(r);
        int* off = x.OffsetsOf(r);
        for (int g = 0; g < k / G; g++, wa += GroupBytes, wb += GroupBytes, q += G)
        {
            Vector256<int> ia = Vector256.Create(off[g]), ib = ia, ja = default, jb = default;
            // Two accumulators per tile (even and odd steps), added at the end of the group: two chains of four
            // dependent instructions instead of one of eight.
            for (int s = 0; s < 8; s += 2)
            {
                var v = Four(q + 4 * s);
                ia = Dot(ia, Vector256.Load(wa + 32 * s), v);
                ib = Dot(ib, Vector256.Load(wb + 32 * s), v);
                v = Four(q + 4 * s + 4);
                ja = Dot(ja, Vector256.Load(wa + 32 * s + 32), v);
                jb = Dot(jb, Vector256.Load(wb + 32 * s + 32), v);
            }
            var c = Vector256.Create(sc[g]);
            fa = Fma.MultiplyAdd(Avx.ConvertToVector256Single(ia + ja), Vector256.Load((float*)(wa + T * G)) * c, fa);
            fb = Fma.MultiplyAdd(Avx.ConvertToVector256Single(ib + jb), Vector256.Load((float*)(wb + T * G)) * c, fb);
        }
        Store(ya, fa, ba);
        Store(yb, fb, bb);
    }
}
