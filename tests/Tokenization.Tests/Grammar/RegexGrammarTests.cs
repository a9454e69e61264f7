using ActorQuery.Tokenization.Grammar;
using static ActorQuery.Tokenization.Tests.Grammar.GrammarTestKit;

namespace ActorQuery.Tokenization.Tests.Grammar;

/// <summary>Regular expressions match the whole output, with the constructs the compiler documents; choices are
/// exact.</summary>
public class RegexGrammarTests
{
    [Theory]
    [InlineData("abc", "abc", true)]
    [InlineData("abc", "abcd", false)]
    [InlineData("a|bc", "bc", true)]
    [InlineData("(ab)+", "ababab", true)]
    [InlineData("(ab)+", "", false)]
    [InlineData("a*b?", "aaa", true)]
    [InlineData("x{2,3}", "x", false)]
    [InlineData("x{2,3}", "xxx", true)]
    [InlineData("x{2,3}", "xxxx", false)]
    [InlineData("x{2,}", "xxxxxxx", true)]
    [InlineData("x{2}", "xx", true)]
    [InlineData("[a-c0-1_]+", "ab0_1c", true)]
    [InlineData("[a-c]", "d", false)]
    [InlineData("[^\"]*", "any 東京 text", true)]
    [InlineData("[^\"]*", "no\"quote", false)]
    [InlineData(".", "\n", false)]
    [InlineData(".", "🎉", true)]
    [InlineData(@"\d{3}-\d{4}", "555-1234", true)]
    [InlineData(@"\w+\s\W", "ab_9 !", true)]
    [InlineData(@"\.\*", ".*", true)]
    [InlineData("^(?:yes|no)$", "no", true)]
    [InlineData("(?<word>[a-z]+)", "hi", true)]
    [InlineData("[é-ü]+", "éü", true)]
    [InlineData("[é-ü]+", "e", false)]
    [InlineData("a+?", "aa", true)]
    [InlineData(@"\u00e9", "é", true)]
    public void Matches_the_whole_output(string pattern, string text, bool expected) =>
        Assert.Equal(expected, Accepts(Regex(pattern), text));

    [Theory]
    [InlineData(@"(a)\1", "\\1")]
    [InlineData("(?=a)a", "(?=")]
    [InlineData(@"\bword", "\\b")]
    [InlineData("(?i)abc", "(?i")]
    [InlineData("a++", "+")]
    [InlineData(@"\p{L}", "\\p")]
    [InlineData("(ab", "(")]
    [InlineData("ab)", ")")]
    [InlineData("*a", "*")]
    public void An_unsupported_construct_is_an_error_naming_it(string pattern, string construct) =>
        Assert.Equal(construct, Assert.Throws<GrammarException>(() => Regex(pattern)).Keyword);

    [Fact]
    public void Choices_accept_exactly_one_of_them()
    {
        var a = GrammarCompiler.Compile(OutputConstraint.Choices(["yes", "yesterday", "東京"]));
        Assert.True(Accepts(a, "yes"));
        Assert.True(Accepts(a, "yesterday"));
        Assert.True(Accepts(a, "東京"));
        Assert.True(IsPrefix(a, "yest"));
        Assert.False(Accepts(a, "ye"));
        Assert.False(IsPrefix(a, "no"));
        Assert.Throws<GrammarException>(() => GrammarCompiler.Compile(OutputConstraint.Choices([])));
    }

    [Fact]
    public void Every_test_regex_compiles()
    {
        foreach (var r in TestRegexes) Regex(r);
    }
}
