"""The chat template's tool calling (issue 26): MiniMind 2025-10's layout, its tags plain text on the
MiniMind2 tokenizer. Given OpenAI-style `tools`, the signatures go into the system turn; an assistant turn's
tool_calls render as <tool_call> blocks (format_tool_call's text); `tool` results as <tool_response> blocks,
consecutive ones in one user turn. Everything without tools renders byte for byte as before."""
import glob
import json
import os

import pytest
from transformers import AutoTokenizer

from model.tools import BUILTIN_TOOL_NAMES, ToolRegistry, format_tool_call, parse_tool_calls

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The template before tool calling (model/tokenizer_config.json at a6d1082): the reference for every
# conversation without tools.
OLD_TEMPLATE = r'''{%- if not messages or messages[0]['role'] != 'system' -%}{{ '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n' }}{%- endif -%}{%- for message in messages -%}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{%- endfor -%}{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- if (enable_thinking is defined and enable_thinking is false) or (open_thinking is defined and open_thinking is false) -%}{{ '<think>\n\n</think>\n\n' }}{%- endif -%}{%- endif -%}'''

# MiniMind's 2025-10 template (jingyaogong/minimind 83e52f6:model/tokenizer_config.json), verbatim: the
# reference for the tool layout.
MINIMIND_2510_TEMPLATE = r'''{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
 {%- if messages[0]['role'] == 'system' -%}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else -%}
        {{- '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n' }}
 {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
   {{- '<|im_start|>' + message.role + '\n' + content }}
  {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}'''

TOOLS = ToolRegistry().schemas("all")  # MiniMind's six, OpenAI's {"type": "function", "function": {...}}
CALC = [t for t in TOOLS if t["function"]["name"] == "calculate_math"]
SYSTEM = {"role": "system", "content": "你是MiniMind，一个乐于助人的AI助手。"}


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(os.path.join(ROOT, "model"))


def render(tok, messages, template=None, **kw):
    return tok.apply_chat_template(messages, tokenize=False, chat_template=template, **kw)


# ---------------------------------------------------------------------------------------------
# Without tools: byte for byte the template before

def _corpus():
    """Every conversation of the bundled demo data without tools (SFT, DPO chosen/rejected, reasoning,
    LoRA with system prompts, RLAIF prompts), and a few forms the data does not have."""
    convs = []
    for path in sorted(glob.glob(os.path.join(ROOT, "dataset", "demo", "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                obj = json.loads(line)
                convs.extend(obj[k] for k in ("conversations", "chosen", "rejected") if k in obj
                             and not any("tools" in m or "tool_calls" in m or m.get("role") == "tool"
                                         for m in obj[k]))  # tool_sft.jsonl, agent_rl.jsonl: tools
    convs += [
        [{"role": "system", "content": ""}, {"role": "user", "content": ""}, {"role": "assistant", "content": ""}],
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "system", "content": "c"},
         {"role": "developer", "content": "d"}, {"role": "user", "content": "<tool_call>\n{}\n</tool_call>"}],
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "tool_calls": []}],
    ]
    return convs


def test_without_tools_renders_byte_for_byte_as_before(tok):
    convs = _corpus()
    assert len(convs) > 2500 and sum(bool(c) and c[0]["role"] == "system" for c in convs) > 150
    switches = ({}, {"enable_thinking": False}, {"enable_thinking": True}, {"open_thinking": False},
                {"open_thinking": True})
    n = 0
    for i, conv in enumerate(convs):
        prompt = conv[:-1] if conv and conv[-1]["role"] == "assistant" else conv
        for messages, gen, kw in ((conv, False, {}), (conv, False, switches[i % 5]), (prompt, True, {}),
                                  (prompt, True, switches[i % 5]), (conv, True, switches[(i + 2) % 5])):
            want = render(tok, messages, OLD_TEMPLATE, add_generation_prompt=gen, **kw)
            assert render(tok, messages, add_generation_prompt=gen, **kw) == want, (messages, gen, kw)
            assert render(tok, messages, add_generation_prompt=gen, tools=None, **kw) == want
            assert render(tok, messages, add_generation_prompt=gen, tools=[], **kw) == want
            n += 1
    assert n == 5 * len(convs)


# ---------------------------------------------------------------------------------------------
# With tools: MiniMind 2025-10's text

CALL = {"name": "calculate_math", "arguments": {"expression": "256 * 37"}}
TOOL_CONVS = [
    # MiniMind's README example: system with tools, an empty-content call, one result, the answer
    [SYSTEM, {"role": "user", "content": "帮我算一下 256 乘以 37 等于多少"},
     {"role": "assistant", "content": "", "tool_calls": [CALL]},
     {"role": "tool", "content": '{"result": "9472"}'},
     {"role": "assistant", "content": "256 乘以 37 等于 9472。"}],
    # no system message; text before two calls (OpenAI's function form, arguments as a JSON string kept
    # as written, and an object); two results grouped in one user turn; a second question
    [{"role": "user", "content": "What is 2**10, and 100 km in miles?"},
     {"role": "assistant", "content": "Let me check.", "tool_calls": [
         {"id": "call_0", "type": "function",
          "function": {"name": "calculate_math", "arguments": '{"expression":"2**10"}'}},
         {"name": "unit_converter", "arguments": {"value": 100, "from_unit": "km", "to_unit": "miles"}}]},
     {"role": "tool", "content": '{"result": "1024"}', "tool_call_id": "call_0"},
     {"role": "tool", "content": '{"result": 62.137}'},
     {"role": "assistant", "content": "1024, and about 62.1 miles."},
     {"role": "user", "content": "谢谢"}],
    # content null (OpenAI), no arguments, a call at the very end
    [SYSTEM, {"role": "user", "content": "现在几点？"},
     {"role": "assistant", "content": None, "tool_calls": [{"name": "get_current_time", "arguments": {}}]}],
    # a conversation that ends with the tool's result (the prompt for the model's next turn)
    [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "", "tool_calls": [
        {"name": "calculate_math", "arguments": {"expression": "1+1"}}]},
     {"role": "tool", "content": '{"result": "2"}'}],
]


@pytest.mark.parametrize("conv", TOOL_CONVS, ids=range(len(TOOL_CONVS)))
@pytest.mark.parametrize("tools", [TOOLS, CALC, None], ids=["six", "one", "none"])
def test_tool_conversations_render_as_minimind_2510(tok, conv, tools):
    for kw in ({}, {"add_generation_prompt": True}, {"add_generation_prompt": True, "enable_thinking": False}):
        assert render(tok, conv, tools=tools, **kw) == render(tok, conv, MINIMIND_2510_TEMPLATE, tools=tools, **kw)


def test_plain_conversations_render_as_minimind_2510(tok):
    """Without tools MiniMind 2025-10's template is MiniMind2's, and so is ours."""
    for conv in _corpus()[::7]:
        if conv and all(m["role"] in ("system", "user", "assistant") for m in conv) \
                and all(m["role"] != "system" for m in conv[1:]):
            for gen in (False, True):
                assert render(tok, conv, add_generation_prompt=gen) == \
                    render(tok, conv, MINIMIND_2510_TEMPLATE, add_generation_prompt=gen)


def test_the_layout_exactly(tok):
    text = render(tok, TOOL_CONVS[0], tools=CALC, add_generation_prompt=False)
    signature = json.dumps(CALC[0], ensure_ascii=False)
    assert text == (
        "<|im_start|>system\n你是MiniMind，一个乐于助人的AI助手。\n\n# Tools\n\n"
        "You may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        + signature + "\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n帮我算一下 256 乘以 37 等于多少<|im_end|>\n"
        "<|im_start|>assistant\n<tool_call>\n"
        '{"name": "calculate_math", "arguments": {"expression": "256 * 37"}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\n{\"result\": \"9472\"}\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n256 乘以 37 等于 9472。<|im_end|>\n")
    # no system message: the tools' system turn has no default prompt
    text = render(tok, TOOL_CONVS[1], tools=TOOLS, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\n# Tools\n\n") and "You are a helpful assistant" not in text
    assert text.count("\n{\"type\": \"function\", \"function\": {\"name\": ") == len(TOOLS) == len(BUILTIN_TOOL_NAMES)
    assert ("<|im_start|>user\n<tool_response>\n{\"result\": \"1024\"}\n</tool_response>\n"
            "<tool_response>\n{\"result\": 62.137}\n</tool_response><|im_end|>\n") in text
    assert text.endswith("<|im_start|>user\n谢谢<|im_end|>\n<|im_start|>assistant\n")
    # the thinking switch is the same with tools
    assert render(tok, TOOL_CONVS[3], tools=CALC, add_generation_prompt=True, enable_thinking=False) == \
        render(tok, TOOL_CONVS[3], tools=CALC, add_generation_prompt=True) + "<think>\n\n</think>\n\n"


def test_format_tool_call_is_the_templates_text(tok):
    """An assistant turn is its content, then each call exactly as format_tool_call writes it ("\\n"
    between blocks and after non-empty content); parse_tool_calls reads the calls back."""
    cases = [
        ("", [("calculate_math", {"expression": "256 * 37"})]),
        ("Let me check.", [("translate_text", {"text": "你好世界", "target_language": "english"}),
                           ("get_exchange_rate", '{"from_currency":"USD","to_currency":"CNY"}'),
                           ("get_current_time", {})]),
        ("line one\n", [("unit_converter", {"value": 1.5, "from_unit": "kg", "to_unit": "pounds"})]),
    ]
    for content, calls in cases:
        msg = {"role": "assistant", "content": content,
               "tool_calls": [{"name": n, "arguments": a} for n, a in calls]}
        text = render(tok, [{"role": "user", "content": "q"}, msg], tools=TOOLS)
        blocks = [format_tool_call(n, a) for n, a in calls]
        body = content + ("\n" if content else "") + "\n".join(blocks)
        assert text.endswith("<|im_start|>assistant\n" + body + "<|im_end|>\n"), text
        parsed = parse_tool_calls(body)
        assert parsed.errors == [] and parsed.content == content.strip()
        assert parsed.calls == [{"name": n, "arguments": json.loads(a) if isinstance(a, str) else a}
                                for n, a in calls]


def test_tags_are_plain_text_on_minimind2s_tokenizer(tok):
    """The tags are not special tokens: the vocabulary is MiniMind2's 6400 (as MiniMind 2025-10 did)."""
    assert len(tok) == 6400
    for tag in ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<tools>"):
        ids = tok(tag, add_special_tokens=False)["input_ids"]
        assert len(ids) > 1 and tok.decode(ids) == tag
