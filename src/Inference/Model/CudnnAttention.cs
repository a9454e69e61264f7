using System.Runtime.InteropServices;

namespace ActorQuery.Inference.Model;

/// <summary>
/// Turns libtorch's cuDNN backend of scaled_dot_product_attention off, so that CUDA attention runs in the flash or
/// memory-efficient kernels instead.
/// <para>
/// Why: PyTorch 2.11 on a Hopper GPU sends bfloat16 attention to cuDNN, and each call spends ~1.5 ms of host CPU
/// building or finding its execution plan (torch.profiler on an H200, 2026-11-28: <c>aten::_cudnn_attention_forward</c>,
/// 1.54 ms of CPU per call for 4 µs of GPU work). A decode step calls attention once per layer, so on the
/// Qwen2.5-0.5B shape (24 layers) that was ~37 ms of a 53 ms step: bfloat16 decoded 2.7× slower than float32,
/// which cuDNN does not take. Hugging Face transformers showed the same on that GPU (73 vs 28 ms per token).
/// </para>
/// <para>
/// How, by hand: TorchSharp 0.107 exposes switches for the flash and math backends only, not cuDNN's. libtorch
/// exports the switch as a C++ member function, <c>at::Context::setSDPUseCuDNN(bool)</c>, on the object that
/// <c>at::globalContext()</c> returns. With the Itanium C++ ABI (Linux, macOS) a non-virtual member function is a
/// plain function whose first argument is the object, so it is called here through its mangled name; the getter
/// <c>userEnabledCuDNNSDP()</c> reads the switch back. Where a name is missing (another ABI, a libtorch without
/// the backend) nothing is changed.
/// </para>
/// </summary>
public static class CudnnAttention
{
    private static readonly object Gate = new();
    private static bool _resolved;
    private static nint _context;           // set last, and only when every name was found: non-zero means usable
    private static SetFlag? _set;
    private static GetFlag? _get;

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate nint GlobalContext();

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate void SetFlag(nint context, [MarshalAs(UnmanagedType.U1)] bool enabled);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    [return: MarshalAs(UnmanagedType.U1)]
    private delegate bool GetFlag(nint context);

    /// <summary>The environment variable that keeps cuDNN attention on when set to 1 (for comparisons).</summary>
    public const string KeepVariable = "ACTORQUERY_CUDNN_ATTENTION";

    /// <summary>Whether libtorch would use cuDNN attention, or null when its switch cannot be reached.</summary>
    public static bool? Enabled()
    {
        lock (Gate) return Resolve() ? _get!(_context) : null;
    }

    /// <summary>Sets the switch; returns false (and changes nothing) when it cannot be reached.</summary>
    public static bool Set(bool enabled)
    {
        lock (Gate)
        {
            if (!Resolve()) return false;
            _set!(_context, enabled);
            return true;
        }
    }

    /// <summary>For an engine on CUDA: turns cuDNN attention off unless <see cref="KeepVariable"/> is 1.</summary>
    public static void ApplyDefault() => Set(Environment.GetEnvironmentVariable(KeepVariable) == "1");

    private static bool Resolve()
    {
        if (_resolved) return _context != 0;
        _resolved = true;
        EnsureTorchLoaded();
        // libtorch_cpu is already loaded by TorchSharp (or, for CUDA, from PyTorch's folder on LD_LIBRARY_PATH);
        // loading it by name returns that same library.
        if (!NativeLibrary.TryLoad("libtorch_cpu.so", out var lib) && !NativeLibrary.TryLoad("libtorch_cpu.dylib", out lib)) return false;
        if (!NativeLibrary.TryGetExport(lib, "_ZN2at13globalContextEv", out var context)
            || !NativeLibrary.TryGetExport(lib, "_ZN2at7Context14setSDPUseCuDNNEb", out var set)
            || !NativeLibrary.TryGetExport(lib, "_ZNK2at7Context19userEnabledCuDNNSDPEv", out var get)) return false;
        _set = Marshal.GetDelegateForFunctionPointer<SetFlag>(set);
        _get = Marshal.GetDelegateForFunctionPointer<GetFlag>(get);
        _context = Marshal.GetDelegateForFunctionPointer<GlobalContext>(context)();
        return _context != 0;
    }

    /// <summary>Makes TorchSharp load libtorch before the lookup (any torch call does).</summary>
    private static void EnsureTorchLoaded() => TorchSharp.torch.InitializeDeviceType(TorchSharp.DeviceType.CPU);
}
