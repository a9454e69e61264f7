using System.Runtime.InteropServices;

namespace ActorQuery.Inference.Memory;

/// <summary>
/// How much memory the CUDA device has in use, for the MemoryWatchdog's readings (reported, not held against its
/// marks). TorchSharp 0.107 exposes no CUDA memory statistics, so this calls the CUDA runtime's
/// <c>cudaMemGetInfo</c> (a stable C API) from the libcudart that libtorch already loaded. It reads only once an
/// engine has loaded on CUDA (<see cref="Use"/>): asking earlier would create a CUDA context (hundreds of MiB) in
/// a CPU-only server. There is no explicit "empty the cache" call: libtorch's <c>CUDACachingAllocator::emptyCache</c> is an inline
/// header function (not exported), and the caching allocator already frees its cached blocks and retries before
/// it raises an out-of-memory error, so a restart's freed tensors are reusable at once.
/// </summary>
public static class CudaMemory
{
    private static readonly object Gate = new();
    private static int _device = -1;
    private static MemGetInfo? _memGetInfo;
    private static SetDevice? _setDevice;
    private static bool _resolved;

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate int MemGetInfo(out nuint free, out nuint total);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate int SetDevice(int device);

    /// <summary>The sonames libtorch's CUDA builds link (CUDA 13, 12, 11); the first one already loaded wins.</summary>
    private static readonly string[] Libraries = ["libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0", "libcudart.so", "cudart64_13.dll", "cudart64_12.dll", "cudart64_110.dll"];

    /// <summary>Marks CUDA device <paramref name="index"/> as used by an engine, so that <see cref="UsedBytes"/> reads it.</summary>
    public static void Use(int index)
    {
        lock (Gate) _device = Math.Max(0, index);
    }

    /// <summary>Bytes in use on the device an engine uses, or null (no CUDA engine, or no libcudart).</summary>
    public static long? UsedBytes()
    {
        lock (Gate)
        {
            if (_device < 0 || !Resolve()) return null;
            // The runtime's current device is per thread and the watchdog runs on pool threads.
            if (_setDevice!(_device) != 0) return null;
            if (_memGetInfo!(out var free, out var total) != 0 || total == 0) return null;
            return (long)(total - free);
        }
    }

    /// <summary>Free and total bytes of CUDA device <paramref name="index"/> (cudaMemGetInfo; this creates the device's
    /// context), or null without libcudart.</summary>
    public static (long Free, long Total)? Info(int index)
    {
        lock (Gate)
        {
            if (!Resolve() || _setDevice!(Math.Max(0, index)) != 0) return null;
            if (_memGetInfo!(out var free, out var total) != 0 || total == 0) return null;
            return ((long)free, (long)total);
        }
    }

    private static bool Resolve()
    {
        if (_resolved) return _memGetInfo is not null;
        _resolved = true;
        foreach (var name in Libraries)
        {
            if (!NativeLibrary.TryLoad(name, out var lib)) continue;
            if (NativeLibrary.TryGetExport(lib, "cudaMemGetInfo", out var get) && NativeLibrary.TryGetExport(lib, "cudaSetDevice", out var set))
            {
                _memGetInfo = Marshal.GetDelegateForFunctionPointer<MemGetInfo>(get);
                _setDevice = Marshal.GetDelegateForFunctionPointer<SetDevice>(set);
                return true;
            }
        }
        return false;
    }
}
