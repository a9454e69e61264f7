using System.Globalization;

namespace ActorQuery.DefaultModel.Training;

public enum ArithmeticOp { Add, Subtract, Multiply }

/// <summary>One problem, independent of how it is phrased.</summary>
public readonly record struct ArithmeticProblem(int A, ArithmeticOp Op, int B)
{
    public int Answer => Op switch
    {
        ArithmeticOp.Add => A + B,
        ArithmeticOp.Subtract => A - B,
        _ => A * B,
    };

    public string AnswerText => Answer.ToString(CultureInfo.InvariantCulture);
}

/// <summary>How a question reaches the model: as raw text, or as one user turn of a ChatML chat.</summary>
public enum PromptFormat { Plain, Chat }

/// <summary>A problem phrased and rendered: the exact prompt text and the completion the model must produce.</summary>
/// <param name="System">The chat's system message, if it has one (chats only).</param>
public sealed record ArithmeticExample(ArithmeticProblem Problem, string Question, PromptFormat Format, string Prompt, string Completion, string? System = null)
{
    /// <summary>The chat as an API client would send it (for <see cref="PromptFormat.Chat"/>).</summary>
    public IReadOnlyList<Tokenization.ChatMessage> Messages =>
        System is null ? [new("user", Question)] : [new("system", System), new("user", Question)];
}

/// <summary>
/// The task the default model is trained on: +, − of integers 0–999 and × of 0–12, in English and Chinese
/// phrasings, as a plain prompt (answer then &lt;|endoftext|&gt;) or a ChatML user turn (answer then &lt;|im_end|&gt;).
/// The held-out split is by problem: a held-out (a, op, b) never appears in training in any phrasing or format.
/// Train and eval both use this class, so they agree on the split by construction.
/// </summary>
public static class ArithmeticTask
{
    public const int MaxAddend = 999;
    public const int MaxFactor = 12;
    public const string EndOfText = "<|endoftext|>";
    public const string ImStart = "<|im_start|>";
    public const string ImEnd = "<|im_end|>";

    /// <summary>System messages some chats carry, so that a client that always sends one still gets an answer.</summary>
    public static readonly string[] SystemMessages =
    [
        "You are a helpful assistant.",
        "You are a helpful assistant",
        "You are a calculator. Answer with the number only.",
    ];

    private static readonly string[] AddWords = ["+", "plus"];
    private static readonly string[] SubWords = ["-", "minus"];
    private static readonly string[] MulWords = ["*", "×", "x", "times", "multiplied by"];
    private static readonly string[] ZhAdd = ["加", "+"];
    private static readonly string[] ZhSub = ["减", "-"];
    private static readonly string[] ZhMul = ["乘以", "乘", "×", "*"];

    private static readonly string[] EnglishTemplates =
    [
        "What is {a} {op} {b}?",
        "What's {a} {op} {b}?",
        "what is {a} {op} {b}",
        "How much is {a} {op} {b}?",
        "Compute {a} {op} {b}.",
        "Calculate {a} {op} {b}.",
        "Calculate {a} {op} {b}",
        "{a} {op} {b}?",
        "{a} {op} {b} =",
        "{a} {op} {b} = ?",
        "{a} {op} {b}",
    ];

    private static readonly string[] ChineseTemplates =
    [
        "{a} {op} {b} 等于多少？",
        "{a}{op}{b}等于多少？",
        "{a}{op}{b}等于多少?",
        "{a} {op} {b} 等于几？",
        "{a} {op} {b} 是多少？",
        "计算 {a} {op} {b}",
        "计算{a}{op}{b}。",
        "{a}{op}{b}=？",
    ];

    /// <summary>The most problems <see cref="HeldOutSet"/> draws with operands 0–999 (half of those held out).</summary>
    public const int MaxHeldOutCount = 20_000;

    /// <summary>The most problems <see cref="HeldOutSet"/> draws with smaller operands (0–99 has 406 held out).</summary>
    public const int MaxSmallHeldOutCount = 300;

    /// <summary>True when the problem belongs to the held-out set. Only + and − are held out: × of 0–12 is a
    /// 169-fact table the model learns by heart, so every fact is trained (and reported separately by eval).</summary>
    public static bool IsHeldOut(ArithmeticProblem p)
    {
        if (p.Op == ArithmeticOp.Multiply) return false;
        // A fixed integer hash (not string.GetHashCode, which is randomised per process): ~2% of problems.
        uint h = (uint)(p.A * 1009 + p.B) * 2654435761u ^ (uint)p.Op * 40503u;
        h ^= h >> 15; h *= 2246822519u; h ^= h >> 13;
        return h % 50 == 0;
    }

    /// <summary>Training example: a problem outside the held-out set, phrased and formatted at random.</summary>
    public static ArithmeticExample NextTraining(Random rng)
    {
        while (true)
        {
            var p = SampleProblem(rng);
            if (IsHeldOut(p)) continue;
            // Half the examples are short plain questions ("37 + 58 =", about 6 tokens instead of 15–30): the
            // arithmetic is the hard part and the prompt's tokens cost compute without adding to the loss, so
            // these buy about twice the problems per CPU second; the other half keeps every phrasing and format.
            return rng.Next(2) == 0 ? RenderShort(p, rng) : Render(p, rng);
        }
    }

    /// <summary>The eval set: <paramref name="count"/> distinct held-out + / − problems (operands uniform in
    /// 0–<paramref name="maxOperand"/>), each in a random phrasing, half plain and half chat. Same seed, same set.
    /// Held out are 39,818 problems with operands up to 999 and 406 with operands up to 99; drawing distinct ones at
    /// random slows down near the end, so at most <see cref="MaxHeldOutCount"/> (<see cref="MaxSmallHeldOutCount"/> with
    /// operands below 999) are asked for.</summary>
    public static IReadOnlyList<ArithmeticExample> HeldOutSet(int count, int seed, int maxOperand = MaxAddend)
    {
        if (maxOperand is < 99 or > MaxAddend) throw new ArgumentOutOfRangeException(nameof(maxOperand), maxOperand, $"must be 99..{MaxAddend}");
        int most = maxOperand < MaxAddend ? MaxSmallHeldOutCount : MaxHeldOutCount;
        if (count is < 1 || count > most) throw new ArgumentOutOfRangeException(nameof(count), count, $"must be 1..{most} with operands up to {maxOperand}");
        var rng = new Random(seed);
        var seen = new HashSet<ArithmeticProblem>();
        var list = new List<ArithmeticExample>(count);
        while (list.Count < count)
        {
            var p = new ArithmeticProblem(rng.Next(maxOperand + 1), rng.Next(2) == 0 ? ArithmeticOp.Add : ArithmeticOp.Subtract, rng.Next(maxOperand + 1));
            if (!IsHeldOut(p) || !seen.Add(p)) continue;
            list.Add(Render(p, rng, list.Count % 2 == 0 ? PromptFormat.Plain : PromptFormat.Chat));
        }
        return list;
    }

    /// <summary>Every multiplication fact once, in a random phrasing and format (all of them are trained).</summary>
    public static IReadOnlyList<ArithmeticExample> MultiplicationTable(int seed)
    {
        var rng = new Random(seed);
        var list = new List<ArithmeticExample>();
        for (int a = 0; a <= MaxFactor; a++)
            for (int b = 0; b <= MaxFactor; b++)
                list.Add(Render(new ArithmeticProblem(a, ArithmeticOp.Multiply, b), rng, (a + b) % 2 == 0 ? PromptFormat.Plain : PromptFormat.Chat));
        return list;
    }

    private static ArithmeticProblem SampleProblem(Random rng)
    {
        // 10% ×: a 169-fact table is learned early; subtraction (sign and borrow) gets the largest share.
        int r = rng.Next(20);
        if (r < 2) return new ArithmeticProblem(rng.Next(MaxFactor + 1), ArithmeticOp.Multiply, rng.Next(MaxFactor + 1));
        var op = r < 10 ? ArithmeticOp.Add : ArithmeticOp.Subtract;
        // Mostly uniform operands (mostly 3-digit); a quarter with a uniformly drawn digit count so that
        // short numbers are not rare.
        return new ArithmeticProblem(Operand(rng), op, Operand(rng));

        static int Operand(Random rng)
        {
            if (rng.Next(4) != 0) return rng.Next(MaxAddend + 1);
            int digits = rng.Next(1, 4);
            return rng.Next(digits == 1 ? 0 : (int)Math.Pow(10, digits - 1), (int)Math.Pow(10, digits));
        }
    }

    private static readonly string[] ShortTemplates = ["{a} {op} {b} =", "{a} {op} {b}", "{a} {op} {b}?", "{a}{op}{b}="];

    private static ArithmeticExample RenderShort(ArithmeticProblem p, Random rng)
    {
        string[] words = p.Op switch { ArithmeticOp.Add => ["+"], ArithmeticOp.Subtract => ["-"], _ => ["*", "×", "x"] };
        string question = Fill(ShortTemplates[rng.Next(ShortTemplates.Length)], p, words[rng.Next(words.Length)]);
        return new ArithmeticExample(p, question, PromptFormat.Plain, question, p.AnswerText + EndOfText);
    }

    private static string Fill(string template, ArithmeticProblem p, string op) => template
        .Replace("{a}", p.A.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
        .Replace("{op}", op, StringComparison.Ordinal)
        .Replace("{b}", p.B.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);

    public static ArithmeticExample Render(ArithmeticProblem p, Random rng, PromptFormat? format = null)
    {
        bool chinese = rng.Next(3) == 0;
        string[] words = (chinese, p.Op) switch
        {
            (false, ArithmeticOp.Add) => AddWords,
            (false, ArithmeticOp.Subtract) => SubWords,
            (false, _) => MulWords,
            (true, ArithmeticOp.Add) => ZhAdd,
            (true, ArithmeticOp.Subtract) => ZhSub,
            (true, _) => ZhMul,
        };
        var templates = chinese ? ChineseTemplates : EnglishTemplates;
        string question = Fill(templates[rng.Next(templates.Length)], p, words[rng.Next(words.Length)]);
        var fmt = format ?? (rng.Next(2) == 0 ? PromptFormat.Plain : PromptFormat.Chat);
        string? system = fmt == PromptFormat.Chat && rng.Next(8) == 0 ? SystemMessages[rng.Next(SystemMessages.Length)] : null;
        return fmt == PromptFormat.Plain
            ? new ArithmeticExample(p, question, fmt, question, p.AnswerText + EndOfText)
            : new ArithmeticExample(p, question, fmt, RenderChat(question, system), p.AnswerText + ImEnd, system);
    }

    /// <summary>Exactly what <see cref="ChatTemplate"/> renders for one user message (and an optional system
    /// message) with add_generation_prompt.</summary>
    public static string RenderChat(string user, string? system = null) =>
        (system is null ? "" : $"{ImStart}system\n{system}{ImEnd}\n") +
        $"{ImStart}user\n{user}{ImEnd}\n{ImStart}assistant\n";

    /// <summary>The classic ChatML template (no default system message, no tools).</summary>
    public const string ChatTemplate =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
}
