using ActorQuery.Tokenization;

namespace ActorQuery.Tokenization.Tests;

/// <summary>The Jinja subset, through <see cref="ChatTemplate"/>, on constructs real chat templates use.</summary>
public sealed class ChatTemplateTests
{
    private static readonly ChatMessage[] Two = [new("user", "a"), new("assistant", "b")];

    private static string Render(string template, IReadOnlyList<ChatMessage>? messages = null, bool addGenerationPrompt = true) =>
        new ChatTemplate(template, new Dictionary<string, string?> { ["bos_token"] = "<s>", ["eos_token"] = "</s>" })
            .Render(messages ?? Two, addGenerationPrompt);

    [Fact]
    public void Applies_trim_blocks_and_lstrip_blocks_as_transformers_does()
    {
        var template = "{% for m in messages %}\n  {% if m.role == 'user' %}\n[{{ m.content }}]\n  {% endif %}\n{% endfor %}";
        Assert.Equal("[a]\n", Render(template));
    }

    [Fact]
    public void Strips_whitespace_at_dash_tags_and_keeps_it_elsewhere()
    {
        Assert.Equal("x y|z", Render("x {{ 'y' }}  \n {{- '|' -}}  \n z"));
    }

    [Fact]
    public void Namespaces_loop_variables_slices_and_arithmetic_work_as_in_jinja()
    {
        var template =
            "{% set ns = namespace(n=0) %}{% for m in messages[::-1] %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}|" +
            "{{ messages[messages|length - 1].content }}|" +
            "{% for m in messages %}{{ loop.index }}{{ m.role }}{% if not loop.last %},{% endif %}{% endfor %}|" +
            "{{ messages[1:][0]['content'] }}|{{ 7 // 2 }}|{{ -1 + 3 }}|{{ 2 * 3 }}";
        Assert.Equal("2|b|1user,2assistant|b|3|2|6", Render(template));
    }

    [Fact]
    public void A_set_inside_a_loop_does_not_leak_out()
    {
        Assert.Equal("outer", Render("{% set x = 'outer' %}{% for m in messages %}{% set x = m.content %}{% endfor %}{{ x }}"));
    }

    [Fact]
    public void Filters_tests_and_string_methods_behave_like_python()
    {
        var template =
            "{{ messages[0].content.split(',') | tojson }}|{{ '  x  ' | trim }}|{{ 'abc'.upper() }}|{{ none }}|" +
            "{{ undefined_name }}|{{ 'a' ~ 1 }}|{{ 'x' if undefined_name is defined else 'y' }}|" +
            "{{ messages[0].content.startswith('p') }}|{{ 'q' in messages[0].content }}|{{ bos_token }}|" +
            "{{ {'k': [1, true, none]} | tojson }}|{{ 'a-b'.replace('-', '+') }}";
        Assert.Equal("[\"p\", \"q\"]|x|ABC|None||a1|y|True|True|<s>|{\"k\": [1, true, null]}|a+b", Render(template, [new("user", "p,q")]));
    }

    [Fact]
    public void Macros_can_be_defined_and_called()
    {
        Assert.Equal("<a><b>", Render("{% macro tag(x) %}<{{ x }}>{% endmacro %}{% for m in messages %}{{ tag(m.content) }}{% endfor %}"));
    }

    [Fact]
    public void Raise_exception_in_a_template_becomes_a_chat_template_error_with_its_message()
    {
        var template = "{% for m in messages %}{% if m.role == 'assistant' %}{{ raise_exception('Conversation roles must alternate user/assistant') }}{% endif %}{% endfor %}";
        var e = Assert.Throws<ChatTemplateException>(() => Render(template));
        Assert.Contains("Conversation roles must alternate user/assistant", e.Message);
    }

    [Fact]
    public void A_syntax_error_names_its_line()
    {
        var e = Assert.Throws<ChatTemplateException>(() => Render("ok\n{% if messages %}never closed"));
        Assert.Contains("line 2", e.Message);
        Assert.Contains("endif", e.Message);
    }

    [Fact]
    public void An_unknown_filter_is_named()
    {
        var e = Assert.Throws<ChatTemplateException>(() => Render("{{ messages | frobnicate }}"));
        Assert.Contains("'frobnicate'", e.Message);
    }

    [Fact]
    public void Empty_messages_are_refused()
    {
        var e = Assert.Throws<ChatTemplateException>(() => Render("{{ 1 }}", []));
        Assert.Contains("messages", e.Message);
    }

    // The shape of Llama 3.1's template (system-message extraction, date header, top-level reassignment of messages,
    // comments, reject/join filters), with the tool-calling branches left out.
    private const string Llama31Style = """
        {{- bos_token }}
        {%- if custom_tools is defined %}
            {%- set tools = custom_tools %}
        {%- endif %}
        {%- if not tools_in_user_message is defined %}
            {%- set tools_in_user_message = true %}
        {%- endif %}
        {%- if not date_string is defined %}
            {%- set date_string = "26 Jul 2024" %}
        {%- endif %}
        {%- if not tools is defined %}
            {%- set tools = none %}
        {%- endif %}

        {#- This block extracts the system message, so we can slot it into the right place. #}
        {%- if messages[0]['role'] == 'system' %}
            {%- set system_message = messages[0]['content']|trim %}
            {%- set messages = messages[1:] %}
        {%- else %}
            {%- set system_message = "" %}
        {%- endif %}

        {#- System message + builtin tools #}
        {{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
        {%- if builtin_tools is defined or tools is not none %}
            {{- "Environment: ipython\n" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
        {%- endif %}
        {{- "Cutting Knowledge Date: December 2023\n" }}
        {{- "Today Date: " + date_string + "\n\n" }}
        {{- system_message }}
        {{- "<|eot_id|>" }}

        {%- for message in messages %}
            {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
                {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
            {%- endif %}
        {%- endfor %}
        {%- if add_generation_prompt %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
        {%- endif %}
        """;

    [Fact]
    public void Renders_a_llama31_style_template_with_its_date_header()
    {
        var text = new ChatTemplate(Llama31Style, new Dictionary<string, string?> { ["bos_token"] = "<|begin_of_text|>" })
            .Render([new("system", " You are helpful. "), new("user", "Hi")]);
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" +
            "You are helpful.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            text);
    }
}
