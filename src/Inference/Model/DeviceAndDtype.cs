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
            default:
                throw new ArgumentException($"unknown device '{name}' (use cpu, cuda, mps or auto)", "device");
        }
    }

    /// <summary>
    /// float32 or bfloat16. "auto" picks bfloat16 only where it is fast: CUDA and MPS, or a CPU with native
    /// bf16 arithmetic (AVX-512 BF16 or AMX). Elsewhere libtorch emulates bf16 and it is several times slower
    /// than float32, so "auto" stays with float32.
    /// </summary>
    public static ScalarType ResolveDtype(string name, Device device) => name.ToLowerInvariant() switch
    {
        "float32" or "fp32" or "f32" => ScalarType.Float32,
        "bfloat16" or "bf16" => ScalarType.BFloat16,
        "auto" => device.type is DeviceType.CUDA or DeviceType.MPS || CpuHasFastBFloat16() ? ScalarType.BFloat16 : ScalarType.Float32,
        _ => throw new ArgumentException($"unknown dtype '{name}' (use float32, bfloat16 or auto)", "dtype"),
    };

    private static bool? _cpuBf16;

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
        _ => t.ToString().ToLowerInvariant(),
    };

    public static int ElementSize(ScalarType t) => t switch
    {
        ScalarType.Float32 => 4,
        ScalarType.BFloat16 or ScalarType.Float16 => 2,
        _ => throw new NotSupportedException($"dtype {t}"),
    };
}
