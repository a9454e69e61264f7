using System.Runtime.InteropServices;

namespace ActorQuery.Contracts;

/// <summary>
/// Recognises out-of-memory failures from libtorch (which TorchSharp surfaces as <see cref="ExternalException"/>
/// with the C++ message) and from the managed runtime, on every device we serve.
/// </summary>
public static class OutOfMemory
{
    private static readonly string[] Markers =
    {
        "out of memory",                          // "CUDA out of memory", "CUDA error: out of memory", "MPS backend out of memory"
        "DefaultCPUAllocator: can't allocate memory",
        "DefaultCPUAllocator: not enough memory",
        "std::bad_alloc",
    };

    public static bool IsOutOfMemory(Exception? e)
    {
        for (var x = e; x is not null; x = x.InnerException)
        {
            if (x is OutOfMemoryException) return true;
            if (x is ExternalException or InvalidOperationException)
            {
                foreach (var m in Markers)
                    if (x.Message.Contains(m, StringComparison.OrdinalIgnoreCase)) return true;
            }
        }
        return false;
    }
}

