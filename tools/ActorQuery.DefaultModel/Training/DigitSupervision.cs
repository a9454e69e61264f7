using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ActorQuery.DefaultModel.Training;

/// <summary>
/// Auxiliary losses for training only: linear probes on the residual stream at every answer position, each
/// asked for one step of the written method. Halfway up, the operands' digits and the operation (the model must
/// have fetched them); one layer below the top, the sign and the two carries (or borrows); at the top, the answer's
/// sign and digits. The probes are thrown away: the checkpoint holds only the Qwen2 weights, and serving never
/// sees them.
/// Why: trained on the answer tokens alone, the model learned a smooth map from number to number whose
/// precision grew with the data (29% exact after 1.5 M problems, see models/default/README.md). Telling each
/// layer what to compute gives every step its own gradient ("sub-task decomposition", Wies et al. 2022), in the
/// same compute: the probes cost a few hundred multiply-adds a position.
/// </summary>
public sealed class DigitSupervision : Module
{
    /// <summary>Targets per answer position: a's units/tens/hundreds, b's, op, sign, carry into tens, carry
    /// into hundreds, then the answer's sign, thousands, hundreds, tens, units.</summary>
    public const int Columns = 15;

    private static readonly int[] Classes = [10, 10, 10, 10, 10, 10, 3, 2, 2, 2, 2, 10, 10, 10, 10];
    private static readonly (int First, int Count)[] Groups = [(0, 7), (7, 3), (10, 5)];
    private const int FirstCarry = 8, LastCarry = 9; // the only columns that can be None (products have no carries)

#pragma warning disable IDE1006, SA1300 // module field names are parameter names
    private readonly ModuleList<Linear> probes;
#pragma warning restore IDE1006, SA1300

    public DigitSupervision(int hiddenSize) : base("digits")
    {
        probes = new ModuleList<Linear>(Groups.Select(g => Linear(hiddenSize, Classes.Skip(g.First).Take(g.Count).Sum())).ToArray());
        RegisterComponents();
    }

    /// <summary>Which residual-stream state each group reads, for a model with <paramref name="layers"/>
    /// layers (states as <see cref="Qwen2TrainingModel.HiddenStates"/> returns them).</summary>
    public static int[] StateIndices(int layers) => [Math.Max(0, layers / 2 - 1), Math.Max(0, layers - 2), layers];

    /// <summary>The targets of one problem (−100 where a target does not apply: carries of a product).</summary>
    public static long[] Targets(ArithmeticProblem p)
    {
        const long None = -100;
        static int Digit(int n, int place) => n / (int)Math.Pow(10, place) % 10;
        int r = p.Answer, m = Math.Abs(r);
        long c1 = None, c2 = None;
        if (p.Op == ArithmeticOp.Add)
        {
            c1 = Digit(p.A, 0) + Digit(p.B, 0) >= 10 ? 1 : 0;
            c2 = Digit(p.A, 1) + Digit(p.B, 1) + c1 >= 10 ? 1 : 0;
        }
        else if (p.Op == ArithmeticOp.Subtract)
        {
            int x = Math.Max(p.A, p.B), y = Math.Min(p.A, p.B);
            c1 = Digit(x, 0) < Digit(y, 0) ? 1 : 0;
            c2 = Digit(x, 1) - c1 < Digit(y, 1) ? 1 : 0;
        }
        long sign = r < 0 ? 1 : 0;
        return [Digit(p.A, 0), Digit(p.A, 1), Digit(p.A, 2), Digit(p.B, 0), Digit(p.B, 1), Digit(p.B, 2), (long)p.Op, sign, c1, c2,
            sign, Digit(m, 3), Digit(m, 2), Digit(m, 1), Digit(m, 0)];
    }

    /// <summary>The targets' cross-entropies summed and divided by <see cref="Columns"/> (their mean; a batch of
    /// products alone has no carry targets, and adds nothing for them). <paramref name="states"/>: the three states
    /// the groups read, each [n, hidden] at the answer positions; <paramref name="targets"/> [n, <see cref="Columns"/>].</summary>
    public Tensor Loss(IReadOnlyList<Tensor> states, Tensor targets)
    {
        if (states.Count != Groups.Length) throw new ArgumentException($"{Groups.Length} states are needed (one a probe group), not {states.Count}", nameof(states));
        if (targets.dim() != 2 || targets.shape[1] != Columns) throw new ArgumentException($"targets must be [n, {Columns}], not [{string.Join(", ", targets.shape)}]", nameof(targets));
        using var scope = NewDisposeScope();
        Tensor total = zeros(1, device: targets.device);
        for (int g = 0; g < Groups.Length; g++)
        {
            var logits = probes[g].forward(states[g]);
            long offset = 0;
            for (int c = Groups[g].First; c < Groups[g].First + Groups[g].Count; c++)
            {
                var t = targets[.., c];
                // A batch of products only has no carry target; cross_entropy would average over nothing (NaN). Other
                // columns always have targets, so only the carries pay for this check's wait on the result.
                if (c is < FirstCarry or > LastCarry || t.ne(-100).any().item<bool>())
                    total = total + functional.cross_entropy(logits.narrow(1, offset, Classes[c]), t, ignore_index: -100);
                offset += Classes[c];
            }
        }
        return (total / Columns).squeeze(0).MoveToOuterDisposeScope();
    }
}
