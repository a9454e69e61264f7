using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ActorQuery.Inference.Model;

/// <summary>
/// The float32 vector operations the hand-written kernels are written in, once for each CPU class: 256-bit
/// (<see cref="Simd256"/>, AVX2/FMA) and 512-bit (<see cref="Simd512"/>, AVX-512F). A kernel is a generic method over
/// the implementing struct; the JIT compiles one copy per struct with every call inlined, so the generic kernel runs
/// as the hand-written intrinsics would, and each CPU class gets the widest vectors it has from one source.
/// </summary>
internal unsafe interface ISimd<TV> where TV : struct
{
    /// <summary>float32 lanes per vector.</summary>
    static abstract int Count { get; }
    static abstract TV Load(float* p);
    static abstract void Store(float* p, TV v);
    /// <summary><see cref="Count"/> bfloat16 values as float32 (each one's 16 bits become the float's top half; exact).</summary>
    static abstract TV BFloat16(ushort* p);
    /// <summary><see cref="Count"/> signed bytes as float32 (exact).</summary>
    static abstract TV Int8(sbyte* p);
    static abstract TV Splat(float v);
    /// <summary>a·b + c, rounded once.</summary>
    static abstract TV MultiplyAdd(TV a, TV b, TV c);
    static abstract TV Multiply(TV a, TV b);
    /// <summary>The lanes' sum, always in the same order.</summary>
    static abstract float Sum(TV v);
}

internal readonly unsafe struct Simd256 : ISimd<Vector256<float>>
{
    public static int Count => 8;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(float* p) => Avx.LoadVector256(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, Vector256<float> v) => Avx.Store(p, v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> BFloat16(ushort* p) => Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(p), 16).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Int8(sbyte* p) => Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Splat(float v) => Vector256.Create(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Fma.MultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => Avx.Multiply(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector256<float> v)
    {
        var s = Sse.Add(v.GetLower(), v.GetUpper());
        s = Sse.Add(s, Sse.MoveHighToLow(s, s));
        s = Sse.AddScalar(s, Sse.Shuffle(s, s, 0x55));
        return s.ToScalar();
    }
}

internal readonly unsafe struct Simd512 : ISimd<Vector512<float>>
{
    public static int Count => 16;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load(float* p) => Avx512F.LoadVector512(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, Vector512<float> v) => Avx512F.Store(p, v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> BFloat16(ushort* p) => Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512Int32(Avx.LoadVector256(p)), 16).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Int8(sbyte* p) => Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Sse2.LoadVector128(p)));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Splat(float v) => Vector512.Create(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Avx512F.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Multiply(Vector512<float> a, Vector512<float> b) => Avx512F.Multiply(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector512<float> v) => Simd256.Sum(Avx.Add(v.GetLower(), v.GetUpper()));
}
