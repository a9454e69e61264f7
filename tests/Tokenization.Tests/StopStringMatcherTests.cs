using ActorQuery.Tokenization;

namespace ActorQuery.Tokenization.Tests;

public sealed class StopStringMatcherTests
{
    private static string Feed(StopStringMatcher m, params string[] chunks) => string.Concat(chunks.Select(m.Push)) + m.Flush();

    [Fact]
    public void Finds_a_stop_string_split_across_chunks_and_releases_only_the_text_before_it()
    {
        var m = new StopStringMatcher(["STOP"]);
        Assert.Equal("Hello wor", m.Push("Hello wor"));
        Assert.Equal("ld! ", m.Push("ld! ST")); // "ST" could be the start of STOP: held
        Assert.Equal("", m.Push("OP and more"));
        Assert.True(m.Stopped);
        Assert.Equal("STOP", m.MatchedStop);
        Assert.Equal("", m.Push("later text"));
        Assert.Equal("", m.Flush());
    }

    [Fact]
    public void Releases_a_held_tail_once_it_turns_out_not_to_be_a_stop_string()
    {
        var m = new StopStringMatcher(["</answer>"]);
        Assert.Equal("a ", m.Push("a </an"));
        Assert.Equal("</and more", m.Push("d more"));
        Assert.False(m.Stopped);
        Assert.Equal("x", m.Push("x"));
    }

    [Fact]
    public void Gives_back_the_held_tail_at_the_end_of_the_text()
    {
        var m = new StopStringMatcher(["\n\nUser:"]);
        Assert.Equal("answer", m.Push("answer\n\nUs"));
        Assert.Equal("\n\nUs", m.Flush());
    }

    [Fact]
    public void The_earliest_of_several_stop_strings_wins()
    {
        var m = new StopStringMatcher(["world", "lo"]);
        Assert.Equal("Hel", Feed(m, "Hello world"));
        Assert.Equal("lo", m.MatchedStop);
    }

    [Fact]
    public void A_stop_string_inside_one_chunk_cuts_it()
    {
        var m = new StopStringMatcher(["<|user|>"]);
        Assert.Equal("Sure.", Feed(m, "Sure.<|user|>Next question"));
        Assert.True(m.Stopped);
    }

    [Fact]
    public void Without_stop_strings_text_passes_straight_through()
    {
        var m = new StopStringMatcher(["", ""]);
        Assert.Equal("abc", m.Push("abc"));
        Assert.False(m.Stopped);
    }

    [Fact]
    public void Handles_multi_character_unicode_stop_strings()
    {
        var m = new StopStringMatcher(["结束🛑"]);
        Assert.Equal("答案", Feed(m, "答案结", "束", "🛑之后"));
        Assert.True(m.Stopped);
    }
}
