namespace ActorQuery.Tokenization.Jinja;

/// <summary>
/// Bounds on what one chat template may cost. A template comes from a model folder, not from us: a recursive macro
/// would otherwise overflow the stack (which .NET cannot catch, so the whole server dies), and a huge loop or string
/// repetition would spin or fill memory on every chat request. Real chat templates stay far below each bound.
/// </summary>
internal static class JinjaLimits
{
    /// <summary>Nested macro calls. Real templates nest two or three (a macro rendering a tool call); 64 is far above
    /// that and, with the nesting bound below, keeps the interpreter's stack well inside a thread pool thread's.</summary>
    public const int MaxCallDepth = 64;

    /// <summary>Nested blocks and expression levels the parser accepts. Real templates nest under 20; 256 keeps
    /// the recursive-descent parser (and the renderer walking its tree) far from the end of the stack.</summary>
    public const int MaxNestingDepth = 256;

    /// <summary>Loop passes per render, all loops together (also the most items a range() or list repetition may
    /// make). A chat template loops over messages and their parts: a million is thousands of times a long chat.</summary>
    public const long MaxLoopIterations = 1_000_000;

    /// <summary>Characters of rendered output (and of any one string value). 4 Mi characters is about a million
    /// tokens, more than any model's context, so a longer prompt could not be served anyway.</summary>
    public const int MaxOutputChars = 4 * 1024 * 1024;

    /// <summary>Wall-clock time per render, checked at each loop pass and macro call. Real templates render in
    /// well under a millisecond; one second spent here is a template doing something it should not.</summary>
    public static readonly TimeSpan RenderTimeBudget = TimeSpan.FromSeconds(1);
}
