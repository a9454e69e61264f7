using TorchSharp;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Model;

/// <summary>Resolves the user's device and compute-dtype choices ("auto" included) into torch values.</summary>
public static class DeviceAndDtype
{
    public static Device ResolveDevice(string name)
    {
        switch (name.ToLowerInvariant())
        {
            case "cpu": return CPU;
            case "cuda":
                if (!cuda.is_available()) throw new NotSupportedException("device 'cuda' requested but CUDA is not available in this libtorch build");
                return CUDA;
            case "mps":
                if (!mps_is_available()) throw new NotSupportedException("device 'mps' requested but MPS is not available on this machine");
                return MPS;
            case "auto":
                if (cuda.is_available()) return CUDA;
                if (mps_is_available()) return MPS;
                return CPU;
            case var n when n.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(n.AsSpan(5), out var index) && index >= 0:
                if (!cuda.is_available() || index >= cuda.device_count())
                    throw new NotSupportedException($"device '{name}' requested but this machine has {(cuda.is_available() ? cuda.device_count() : 0)} CUDA device(s)");
                return new Device(DeviceType.CUDA, index);
            default:
                throw new ArgumentException($"unknown device '{name}' (use cpu, cuda, cuda:N, mps or auto)", "device");
        }
    }

    /// <summary>
    /// The compute dtype of a name: float32 or bfloat16 ("int8" computes in float32). "auto" picks bfloat16 only where
    /// libtorch computes it fast: CUDA and MPS, or a CPU with native bf16 arithmetic (AVX-512 BF16 or AMX); elsewhere
    /// libtorch emulates bf16, several times slower than float32.
    /// </summary>
    public static ScalarType ResolveDtype(string name, Device device) => name.ToLowerInvariant() switch
    {
        "float32" or "fp32" or "f32" => ScalarType.Float32,
        "bfloat16" or "bf16" => ScalarType.BFloat16,
        "int8" => ScalarType.Float32,
        "auto" => device.type is DeviceType.CUDA or DeviceType.MPS || CpuHasFastBFloat16() ? ScalarType.BFloat16 : ScalarType.Float32,
        _ => throw new ArgumentException($"unknown dtype '{name}' (use float32, bfloat16, int8 or auto)", "dtype"),
    };

    /// <summary>
    /// The compute dtype (activations, norms, the KV cache) and the dtype the weight matrices are stored in. On an x86
    /// CPU where the hand-written kernel runs (<paramref name="cpuKernel"/>) the arithmetic is always float32 and only the
    /// matrices' format changes: bfloat16 keeps them bf16 (half the memory, half the bytes a decode step reads), int8
    /// quantizes them at load (<see cref="Int8Matrix"/>, a quarter); the kernel widens each value to float32 as it reads
    /// it. That holds on CPUs with bf16 instructions too: there the kernel decoded one stream 1.8× faster than libtorch's
    /// native bf16 matrix-vector path (docs/performance.md). "auto" keeps a checkpoint saved in bfloat16 (config.json's
    /// torch_dtype, as Qwen2.5 and Llama 3.2 are) in bf16 matrices: its values widen to float32 exactly, so the answers
    /// are float32's, bit for bit, from half the memory; other checkpoints stay float32. int8 is never chosen by "auto"
    /// (it changes the answers) and runs only on the kernel.
    /// </summary>
    public static (ScalarType Compute, ScalarType Matrices) ResolveDtypes(string name, Device device, string? checkpointDtype, bool cpuKernel)
    {
        var dtype = ResolveDtype(name, device);
        bool int8 = name.Equals("int8", StringComparison.OrdinalIgnoreCase);
        if (device.type != DeviceType.CPU || !cpuKernel)
        {
            if (int8)
                throw new NotSupportedException($"int8 weights run only on the hand-written CPU kernel (an x86 CPU with AVX2/FMA, " +
                                                $"ACTORQUERY_GEMM not 'torch'); on {device.type} use bfloat16 or float32");
            return (dtype, dtype);
        }
        if (int8) return (ScalarType.Float32, ScalarType.Int8);
        bool bf16Matrices = name.Equals("bfloat16", StringComparison.OrdinalIgnoreCase) || name.Equals("bf16", StringComparison.OrdinalIgnoreCase)
                            || (name.Equals("auto", StringComparison.OrdinalIgnoreCase) && checkpointDtype is "bfloat16");
        return (ScalarType.Float32, bf16Matrices ? ScalarType.BFloat16 : ScalarType.Float32);
    }

    /// <summary>The --dtype whose weight matrices are smaller than <paramref name="matrices"/> on this device, or null:
    /// bfloat16 below float32; int8 below bfloat16 where the CPU kernel runs (<paramref name="cpuKernel"/>).</summary>
    public static string? SmallerFormat(ScalarType matrices, bool cpuKernel) => matrices switch
    {
        ScalarType.Float32 => "bfloat16",
        ScalarType.BFloat16 or ScalarType.Float16 when cpuKernel => "int8",
        _ => null,
    };

    /// <summary>The vectors the hand-written CPU kernels run on here: "avx512", "avx2", or "none" (no AVX2/FMA).</summary>
    public static string CpuKernelVectors => SmallBatchGemm.Supported ? SmallBatchGemm.Isa : "none";

    private static bool? _cpuBf16;

    /// <summary>Tests take the other CPU class's choices with this (null: read the CPU again); the CPU's answer is
    /// otherwise read once from /proc/cpuinfo.</summary>
    internal static void AssumeFastBFloat16(bool? fast) => _cpuBf16 = fast;

    public static bool CpuHasFastBFloat16()
    {
        if (_cpuBf16 is bool known) return known;
        bool fast = false;
        if (OperatingSystem.IsLinux() && File.Exists("/proc/cpuinfo"))
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
            {
                if (!line.StartsWith("flags", StringComparison.Ordinal)) continue;
                var flags = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                fast = flags.Contains("avx512_bf16") || flags.Contains("amx_bf16");
                break;
            }
        }
        else if (OperatingSystem.IsMacOS() && System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.Arm64)
        {
            fast = true; // Apple M2 and later have BF16 instructions; M1 runs it through the GPU path anyway.
        }
        _cpuBf16 = fast;
        return fast;
    }

    public static string Name(ScalarType t) => t switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        ScalarType.Int8 => "int8",
        _ => t.ToString().ToLowerInvariant(),
    };

    public static int ElementSize(ScalarType t) => t switch
    {
        ScalarType.Float32 => 4,
        ScalarType.BFloat16 or ScalarType.Float16 => 2,
        ScalarType.Int8 => 1,
        _ => throw new NotSupportedException($"dtype {t}"),
    };
}
