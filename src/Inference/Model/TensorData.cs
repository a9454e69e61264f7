using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Model;

/// <summary>
/// Raw access to a CPU float32 (or bfloat16, or int8) tensor's elements, for the hand-written kernels and for copying logits out.
/// TorchSharp's own accessor (<c>data&lt;float&gt;().ToArray()</c>) copies element by element: 16 rows of logits of
/// a 152k vocabulary took 39 ms of a 361 ms step that way, against well under a millisecond as one block copy.
/// </summary>
internal static unsafe partial class TensorData
{
    /// <summary>The address of <paramref name="t"/>'s first element; t must be a float32 CPU tensor, and the caller
    /// keeps it alive (and, for the layout it assumes, contiguous) while it uses the pointer.</summary>
    public static float* Floats(Tensor t) => (float*)Address(t, ScalarType.Float32, sizeof(float));

    /// <summary>As <see cref="Floats"/>, for a bfloat16 CPU tensor.</summary>
    public static ushort* BFloat16s(Tensor t) => (ushort*)Address(t, ScalarType.BFloat16, sizeof(ushort));

    /// <summary>As <see cref="Floats"/>, for an int8 CPU tensor (a packed <see cref="Int8Matrix"/>).</summary>
    public static sbyte* Bytes(Tensor t) => (sbyte*)Address(t, ScalarType.Int8, sizeof(sbyte));

    private static byte* Address(Tensor t, ScalarType dtype, int elementBytes)
    {
        if (t.dtype != dtype || t.device_type != DeviceType.CPU)
            throw new ArgumentException($"expected a {DeviceAndDtype.Name(dtype)} CPU tensor, got {t.dtype} on {t.device}", nameof(t));
        return (byte*)THSStorage_data_ptr(t.Handle) + t.storage_offset() * elementBytes;
    }

    /// <summary>Row <paramref name="row"/> of a contiguous float32 CPU matrix copied into <paramref name="destination"/>.</summary>
    public static void CopyRow(Tensor matrix, int row, Span<float> destination)
    {
        int width = (int)matrix.shape[1];
        if (!matrix.is_contiguous()) throw new ArgumentException("expected a contiguous matrix", nameof(matrix));
        new ReadOnlySpan<float>(Floats(matrix) + (long)row * width, width).CopyTo(destination);
    }

    [LibraryImport("LibTorchSharp")]
    private static partial IntPtr THSStorage_data_ptr(IntPtr tensor);
}
