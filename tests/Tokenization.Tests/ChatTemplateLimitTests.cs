using ActorQuery.Tokenization;

namespace ActorQuery.Tokenization.Tests;

/// <summary>
/// A template from a model folder that recurses, loops or grows without bound fails its render with a
/// <see cref="ChatTemplateException"/> that says which limit it broke, instead of ending or stalling the process.
/// </summary>
public sealed class ChatTemplateLimitTests
{
    private static readonly ChatMessage[] One = [new("user", "hi")];

    private static ChatTemplate Parse(string template) => new(template, new Dictionary<string, string?>());

    /// <summary>Renders with an hour's time budget, so that on a busy machine the limit under test is reached first.</summary>
    private static ChatTemplateException RenderFails(string template, TimeSpan? timeBudget = null)
    {
        var e = Assert.Throws<ChatTemplateException>(() => Parse(template).Render(One, true, timeBudget ?? TimeSpan.FromHours(1)));
        Assert.True(e.IsTemplateFault, e.Message);
        return e;
    }

    [Fact]
    public void A_recursive_macro_stops_at_the_call_depth_limit_and_names_the_macro()
    {
        var e = RenderFails("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}");
        Assert.Contains("macro recursion deeper than 64 (macro 'm')", e.Message);
    }

    [Fact]
    public void Mutually_recursive_macros_stop_at_the_call_depth_limit()
    {
        var e = RenderFails("{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}{{ a() }}");
        Assert.Contains("macro recursion deeper than 64", e.Message);
    }

    [Fact]
    public void Macros_nested_within_the_limit_still_render()
    {
        var template = "{% macro m(n) %}{% if n > 0 %}{{ m(n - 1) }}{% endif %}{{ n }}{% endmacro %}{{ m(60) }}";
        Assert.Equal(string.Concat(Enumerable.Range(0, 61)), Parse(template).Render(One));
    }

    [Fact]
    public void Deeply_nested_parentheses_are_a_syntax_error_not_a_stack_overflow()
    {
        var template = "{{ " + new string('(', 100_000) + "1" + new string(')', 100_000) + " }}";
        var e = Assert.Throws<ChatTemplateException>(() => Parse(template));
        Assert.Contains("nested deeper than 256 levels", e.Message);
    }

    [Fact]
    public void Deeply_nested_blocks_are_a_syntax_error_not_a_stack_overflow()
    {
        var template = string.Concat(Enumerable.Repeat("{% if true %}", 100_000)) + "x" + string.Concat(Enumerable.Repeat("{% endif %}", 100_000));
        var e = Assert.Throws<ChatTemplateException>(() => Parse(template));
        Assert.Contains("nested deeper than 256 levels", e.Message);
    }

    [Fact]
    public void A_long_unary_chain_is_a_syntax_error_not_a_stack_overflow()
    {
        var e = Assert.Throws<ChatTemplateException>(() => Parse("{{ " + string.Concat(Enumerable.Repeat("not ", 100_000)) + "x }}"));
        Assert.Contains("nested deeper than 256 levels", e.Message);
    }

    [Fact]
    public void A_huge_range_fails_before_building_its_list()
    {
        var e = RenderFails("{% for i in range(10**9) %}{% endfor %}");
        Assert.Contains("range() of more than 1,000,000 items", e.Message);
    }

    [Fact]
    public void Nested_loops_stop_at_the_iteration_limit_per_render()
    {
        var e = RenderFails("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
        Assert.Contains("more than 1,000,000 loop iterations", e.Message);
    }

    [Fact]
    public void A_huge_string_repetition_fails_before_allocating_it()
    {
        var e = RenderFails("{{ 'x' * 10**9 }}");
        Assert.Contains("a string longer than 4,194,304 characters", e.Message);
    }

    [Fact]
    public void A_string_doubled_in_a_loop_stops_at_the_string_limit()
    {
        var e = RenderFails("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}");
        Assert.Contains("a string longer than 4,194,304 characters", e.Message);
    }

    [Fact]
    public void Output_written_a_piece_at_a_time_stops_at_the_output_limit()
    {
        var e = RenderFails("{% for i in range(1000000) %}{{ 'xxxxxxxxxx' }}{% endfor %}");
        Assert.Contains("output longer than 4,194,304 characters", e.Message);
    }

    [Fact]
    public void A_huge_list_repetition_fails_before_allocating_it()
    {
        var e = RenderFails("{{ ([1] * 10**9) | length }}");
        Assert.Contains("a list longer than 1,000,000 items", e.Message);
    }

    [Fact]
    public void A_quadratic_filter_on_a_large_list_stops_at_the_time_budget()
    {
        // unique over a million distinct items is 10^12 comparisons in one call: no loop or size limit applies.
        var e = RenderFails("{{ range(1000000) | unique | length }}", TimeSpan.FromMilliseconds(200));
        Assert.Contains("rendering took longer than 0.2 s", e.Message);
    }

    [Fact]
    public void The_default_time_budget_stops_a_render_that_no_other_limit_would()
    {
        var e = Assert.Throws<ChatTemplateException>(() => Parse("{{ range(1000000) | unique | length }}").Render(One));
        Assert.True(e.IsTemplateFault);
        Assert.Contains("rendering took longer than 1 s", e.Message);
    }

    [Theory]
    [InlineData("{{ ns }}")]
    [InlineData("{{ ns | tojson }}")]
    [InlineData("{{ ns == ns2 }}")]
    public void A_namespace_that_holds_itself_fails_the_render_instead_of_overflowing_the_stack(string use)
    {
        var e = RenderFails("{% set ns = namespace() %}{% set ns.me = ns %}{% set ns2 = namespace() %}{% set ns2.me = ns2 %}" + use);
        Assert.Contains("nested too deeply for the stack", e.Message);
    }

    [Theory]
    [InlineData("{{ ([s] * 1000) | join }}")]
    [InlineData("{{ ','.join([s] * 1000) }}")]
    [InlineData("{{ ('a' * 1000000) | replace('a', s) }}")]
    [InlineData("{{ ('a' * 1000000).replace('a', s) }}")]
    [InlineData("{{ ([s] * 1000) | tojson }}")]
    [InlineData("{{ ([s] * 1000) | string }}")]
    public void Text_built_from_many_copies_of_a_long_string_stops_at_the_string_limit(string use)
    {
        var e = RenderFails("{% set s = 'x' * 1000000 %}" + use);
        Assert.Contains("a string longer than 4,194,304 characters", e.Message);
    }

    [Fact]
    public void The_templates_own_rejection_of_the_messages_is_not_a_template_fault()
    {
        var e = Assert.Throws<ChatTemplateException>(() => Parse("{{ raise_exception('roles must alternate') }}").Render(One));
        Assert.False(e.IsTemplateFault);
    }
}
