namespace ActorQuery.Inference;

/// <summary>
/// SplitMix64's output function (Steele, Lea and Flood): a bijective 64-bit mix, so that a counter or any other
/// input maps to well-spread bits. Both places that need seeded numbers that depend only on their inputs, never on a
/// stream's position or a thread count, use it: the dummy weights (<see cref="Model.RandomFill"/>) and the sampler's
/// per-token draw (<see cref="Sampling.Sampler.Uniform"/>).
/// </summary>
internal static class SplitMix64
{
    /// <summary>The generator's step: the golden-ratio increment.</summary>
    public const ulong Gamma = 0x9E3779B97F4A7C15UL;

    public static ulong Mix(ulong z)
    {
        unchecked
        {
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }
}
