"""Tool-calling SFT data (issue 26): MiniMind's format read by dataset/sources.py, rendered by the chat
template, cut into loss masks by dataset/token_cache.py. Masks token by token: the assistant's tool-call
blocks and answers (and their <|im_end|>) are targets; the system turn with the tool signatures and the
tool results (<tool_response> blocks in a user turn) never are. Bad tool JSON is one line naming the file
and line (exit 2 from a training script)."""
import copy
import json
import os

import pytest
import torch

from dataset.lm_dataset import DPODataset, PromptDataset, SFTDataset
from dataset.sources import DataError
from model.tools import ToolRegistry
from test_lm_dataset import write_jsonl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZERS = {"project": os.path.join(ROOT, "model"),
              "minimind": os.path.join(ROOT, "..", "shared", "minimind_tokenizer")}
TOOLS = ToolRegistry().schemas("calculate_math,unit_converter")
_TOKS = {}


def _tok(name):
    """The project tokenizer, or MiniMind2's vocabulary with the project's chat template (MiniMind2's
    own template has no tools; MiniMind 2025-10 put its tool template on this tokenizer)."""
    path = TOKENIZERS[name]
    if not os.path.exists(os.path.join(path, "tokenizer.json")):
        pytest.skip(f"{path} is absent")
    if name not in _TOKS:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(path)
        tok.chat_template = AutoTokenizer.from_pretrained(TOKENIZERS["project"]).chat_template
        _TOKS[name] = tok
    return _TOKS[name]


@pytest.fixture(params=sorted(TOKENIZERS))
def tok(request):
    return _tok(request.param)


# ---------------------------------------------------------------------------------------------
# The masks, token by token, against a rendering built by hand

SYSTEM = "你是MiniMind，一个乐于助人的AI助手。"
CASES = {
    # MiniMind-3's files: tools and tool_calls as JSON strings, an empty-content call, one result
    "minimind_strings": [
        {"role": "system", "content": SYSTEM, "tools": json.dumps(TOOLS, ensure_ascii=False)},
        {"role": "user", "content": "帮我算一下 256 乘以 37 等于多少"},
        {"role": "assistant", "content": "",
         "tool_calls": '[{"name":"calculate_math","arguments":{"expression":"256 * 37"}}]'},
        {"role": "tool", "content": '{"result":"9472"}'},
        {"role": "assistant", "content": "256 乘以 37 等于 9472。"}],
    # OpenAI's form: content null, two calls (arguments a JSON string, kept as written, and an object),
    # two results grouped in one user turn, then a turn answered without tools
    "openai_two_calls": [
        {"role": "system", "content": "", "tools": TOOLS},
        {"role": "user", "content": "What is 2**10, and 100 km in miles?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_0", "type": "function",
             "function": {"name": "calculate_math", "arguments": '{"expression":"2**10"}'}},
            {"id": "call_1", "type": "function",
             "function": {"name": "unit_converter",
                          "arguments": {"value": 100, "from_unit": "km", "to_unit": "miles"}}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": '{"result": "1024"}'},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"result": 62.137, "unit": "miles"}'},
        {"role": "assistant", "content": "1024; 100 km is about 62.1 miles."},
        {"role": "user", "content": "Thanks!"},
        {"role": "assistant", "content": "You're welcome."}],
    # text before the call, MiniMind 2025-10's "functions", a call whose result ends the line
    "content_and_call_last": [
        {"role": "system", "content": "Be brief.", "functions": TOOLS[:1]},
        {"role": "user", "content": "3*7?"},
        {"role": "assistant", "content": "I'll compute it.",
         "tool_calls": [{"name": "calculate_math", "arguments": {"expression": "3*7"}}]},
        {"role": "tool", "content": '{"result": "21"}'}],
}


def _call_text(name, arguments):
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return '<tool_call>\n{"name": "' + name + '", "arguments": ' + args + '}\n</tool_call>'


def hand_built(conv):
    """[(text, is_target)] of the conversation, written from MiniMind 2025-10's layout by hand."""
    sys_msg = conv[0]
    tools = sys_msg.get("tools", sys_msg.get("functions"))
    tools = json.loads(tools) if isinstance(tools, str) else tools
    pieces = [("<|im_start|>system\n" + (sys_msg["content"] + "\n\n" if sys_msg["content"] is not None else "")
               + "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
               "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
               + "".join("\n" + json.dumps(t, ensure_ascii=False) for t in tools)
               + "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
               "within <tool_call></tool_call> XML tags:\n<tool_call>\n"
               '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n', 0)]
    rest = conv[1:]
    for i, m in enumerate(rest):
        if m["role"] == "user":
            pieces.append((f"<|im_start|>user\n{m['content']}<|im_end|>\n", 0))
        elif m["role"] == "tool":
            opens = i == 0 or rest[i - 1]["role"] != "tool"
            closes = i == len(rest) - 1 or rest[i + 1]["role"] != "tool"
            pieces.append((("<|im_start|>user" if opens else "") + "\n<tool_response>\n" + m["content"]
                           + "\n</tool_response>" + ("<|im_end|>\n" if closes else ""), 0))
        else:
            calls = m.get("tool_calls") or []
            calls = json.loads(calls) if isinstance(calls, str) else calls
            body = m["content"] or ""
            for c in calls:
                c = c.get("function", c)
                body += ("\n" if body else "") + _call_text(c["name"], c["arguments"])
            pieces += [("<|im_start|>assistant\n", 0), (body + "<|im_end|>", 1), ("\n", 0)]
    return pieces


def expected_item(tok, conv):
    """(X, Y, mask) from the hand-built rendering: the text cut where the mask changes, each stretch
    tokenized on its own (as the data layer does), ids after the last target left out."""
    stretches = []
    for text, target in hand_built(conv):
        if stretches and stretches[-1][1] == target:
            stretches[-1][0] += text
        else:
            stretches.append([text, target])
    ids, mask = [], []
    for text, target in stretches:
        t = tok(text, add_special_tokens=False)["input_ids"]
        ids += t
        mask += [target] * len(t)
    last = max(i for i, m in enumerate(mask) if m)
    ids, mask = ids[:last + 1], mask[:last + 1]
    return ids[:-1], ids[1:], mask[1:]


def target_texts(tok, y, m):
    spans, cur = [], []
    for tid, on in zip(y.tolist(), m.tolist()):
        if on:
            cur.append(tid)
        elif cur:
            spans.append(cur)
            cur = []
    if cur:
        spans.append(cur)
    return [tok.decode(s) for s in spans]


@pytest.mark.parametrize("case", sorted(CASES))
def test_tool_masks_token_by_token(tmp_path, tok, case):
    conv = CASES[case]
    ds = SFTDataset(write_jsonl(tmp_path / "t.jsonl", [{"conversations": conv}]), tok, 4096, verbose=False)
    x, y, m = ds[0]
    want = expected_item(tok, conv)
    assert x.tolist() == want[0] and y.tolist() == want[1] and m.tolist() == want[2]
    # the cut does not change the tokens: they are the whole rendering's, up to the last target
    text = tok.apply_chat_template(_as_template_input(conv), tools=_tools(conv), tokenize=False)
    whole = tok(text, add_special_tokens=False)["input_ids"]
    assert torch.cat([x[:1], y]).tolist() == whole[:len(y) + 1]
    # read back as text: the call blocks and answers are targets, nothing else is
    answers = [piece for piece, target in hand_built(conv) if target]
    assert target_texts(tok, y, m) == answers
    for t, on in zip(y.tolist(), m.tolist()):
        if on:
            assert "tool_response" not in tok.decode([t]) and "Tools" not in tok.decode([t])
    got = tok.decode(y[m.bool()])
    assert "<tool_response>" not in got and "# Tools" not in got and "</tools>" not in got


def _tools(conv):
    t = conv[0].get("tools", conv[0].get("functions"))
    return json.loads(t) if isinstance(t, str) else t


def _as_template_input(conv):
    out = []
    for m in conv:
        m = {k: v for k, v in m.items() if k not in ("tools", "functions")}
        if isinstance(m.get("tool_calls"), str):
            m["tool_calls"] = json.loads(m["tool_calls"])
        out.append(m)
    return out


def test_forms_are_equivalent(tmp_path, tok):
    """JSON strings or lists, {"name", "arguments"} or OpenAI's function form, content "" or null: the same
    tokens and masks (arguments given as a string are written as they are, so an object here)."""
    call = {"name": "calculate_math", "arguments": {"expression": "256 * 37"}}
    base = copy.deepcopy(CASES["minimind_strings"])
    forms = []
    for tools in (TOOLS, json.dumps(TOOLS, ensure_ascii=False)):
        for calls in ([call], json.dumps([call], ensure_ascii=False), [{"type": "function", "function": call}]):
            for content in ("", None):
                conv = copy.deepcopy(base)
                conv[0]["tools"], conv[2]["tool_calls"], conv[2]["content"] = tools, calls, content
                forms.append({"conversations": conv})
    ds = SFTDataset(write_jsonl(tmp_path / "f.jsonl", forms), tok, 4096, verbose=False)
    first = [t.tolist() for t in ds[0]]
    assert all([t.tolist() for t in ds[i]] == first for i in range(1, len(forms)))
    assert first == [list(v) for v in expected_item(tok, base)]


def test_dpo_and_rlaif_lines_with_tools(tmp_path, tok):
    conv = CASES["minimind_strings"]
    wrong = copy.deepcopy(conv)
    wrong[2]["tool_calls"] = [{"name": "calculate_math", "arguments": {"expression": "256 + 37"}}]
    wrong[4]["content"] = "256 乘以 37 等于 293。"
    ds = DPODataset(write_jsonl(tmp_path / "d.jsonl", [{"chosen": conv, "rejected": wrong}]), tok, 4096,
                    verbose=False)
    item = ds[0]
    assert target_texts(tok, item["y_chosen"], item["mask_chosen"]) == [p for p, t in hand_built(conv) if t]
    assert target_texts(tok, item["y_rejected"], item["mask_rejected"]) == [p for p, t in hand_built(wrong) if t]
    # an RLAIF prompt (MiniMind's agent_rl lines: tools on the system message, "gt") gets the signatures
    line = {"conversations": conv[:2] + [{"role": "assistant", "content": ""}], "gt": ["9472"]}
    p = PromptDataset(write_jsonl(tmp_path / "r.jsonl", [line]), tok, 4096, verbose=False)[0]
    text = tok.decode(p["prompt_ids"])
    assert text == tok.apply_chat_template(conv[:2], tools=TOOLS, tokenize=False, add_generation_prompt=True)
    assert "# Tools" in text and '"name": "calculate_math"' in text and p["fields"] == {"gt": ["9472"]}


def test_data_without_tools_tokenizes_as_before(tmp_path, tok):
    """The cached tokens of data without tools are what the template before tool calling gave (so
    token_cache.FORMAT_VERSION stays): SFT lines with and without system prompts, reasoning lines."""
    from test_tool_template import OLD_TEMPLATE
    rows = []
    for name in ("sft", "lora_identity", "reason"):
        with open(os.path.join(ROOT, "dataset", "demo", f"{name}.jsonl"), encoding="utf-8") as f:
            rows += [json.loads(line) for line in f][:40]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    old = copy.deepcopy(tok)
    old.chat_template = OLD_TEMPLATE
    new_ds = SFTDataset(path, tok, 4096, verbose=False)
    old_ds = SFTDataset(path, old, 4096, cache_dir=str(tmp_path / "old"), verbose=False)
    assert len(new_ds) == len(old_ds) == len(rows)
    for i in range(len(rows)):
        assert all(torch.equal(a, b) for a, b in zip(new_ds[i], old_ds[i]))


def test_a_template_without_tools_is_a_clear_error(tmp_path):
    """MiniMind2's own template renders neither calls nor signatures: one line, not a silent mis-training."""
    path = TOKENIZERS["minimind"]
    if not os.path.exists(os.path.join(path, "tokenizer.json")):
        pytest.skip(f"{path} is absent")
    from transformers import AutoTokenizer
    mm = AutoTokenizer.from_pretrained(path)
    p = write_jsonl(tmp_path / "t.jsonl", [{"conversations": CASES["minimind_strings"]}])
    with pytest.raises(DataError, match=r"t\.jsonl:1: expected the chat template to render assistant turn 1 "
                                        r"of \"conversations\" with its tool calls"):
        SFTDataset(p, mm, 512, verbose=False)
    answer_only = [CASES["minimind_strings"][0], CASES["minimind_strings"][1],
                   {"role": "assistant", "content": "9472"}]
    p = write_jsonl(tmp_path / "a.jsonl", [{"conversations": answer_only}])
    with pytest.raises(DataError, match=r"a\.jsonl:1: expected the chat template to render the tools"):
        SFTDataset(p, mm, 512, verbose=False)


# ---------------------------------------------------------------------------------------------
# Bad tool data: one line naming file and line

U, A = {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}
S = {"role": "system", "content": "", "tools": TOOLS}
CALLING = {"role": "assistant", "content": "", "tool_calls": [{"name": "calculate_math", "arguments": {"expression": "1"}}]}
RESULT = {"role": "tool", "content": '{"result": "1"}'}
GOOD = {"conversations": [S, U, CALLING, RESULT, A]}


def _with(k, **fields):
    conv = copy.deepcopy(GOOD["conversations"])
    conv[k].update(fields)
    return {"conversations": conv}


BAD = [
    (_with(2, tool_calls='[{"name": "calculate_math", "arguments": {"expression": "1"}'),
     '"tool_calls" of message 3 of "conversations" to be a list of tool calls (or that list as a JSON string), '
     'got a string that is not JSON (the line ends before the JSON object does (column 61))'),
    (_with(2, tool_calls={"name": "calculate_math"}),
     '"tool_calls" of message 3 of "conversations" to be a list of tool calls'),
    (_with(2, tool_calls=[{"arguments": {}}]),
     "tool_calls[0] of message 3 of \"conversations\" to have a \"name\", got keys ['arguments']"),
    (_with(2, tool_calls=[{"name": "calculate_math", "arguments": "[1, 2]"}]),
     'the arguments of tool_calls[0] of message 3 of "conversations" to be a JSON object, got a list (as a JSON string)'),
    (_with(2, tool_calls=[{"name": "calculate_math", "arguments": "{expression: 1}"}]),
     'the arguments of tool_calls[0] of message 3 of "conversations" to be a JSON object, got a string that is not JSON'),
    (_with(2, tool_calls=[{"type": "function", "function": {"name": "calculate_math", "arguments": 5}}]),
     'the arguments of tool_calls[0] of message 3 of "conversations" to be a JSON object, got a number'),
    (_with(2, tool_calls=[{"type": "function", "function": "calculate_math"}]),
     '"function" of tool_calls[0] of message 3 of "conversations" to be an object, got a string'),
    (_with(0, tools=[{"type": "function", "function": {"description": "no name"}}]),
     "tools[0] of message 1 of \"conversations\" to have a \"name\", got keys ['description']"),
    (_with(0, tools=[{"name": ""}]), 'tools[0] of message 1 of "conversations" to have a "name", got name '),
    (_with(0, tools='[{"type": "function", "function": {"name": "x"}}'),
     '"tools" of message 1 of "conversations" to be a list of tools (or that list as a JSON string), '
     'got a string that is not JSON'),
    (_with(0, tools={"name": "x"}), '"tools" of message 1 of "conversations" to be a list of tools'),
    (_with(0, tools=["calculate_math"]), 'tools[0] of message 1 of "conversations" to be an object, got a string'),
    (_with(0, tools=[{"name": "x", "parameters": "none"}]),
     'the parameters of tools[0] of message 1 of "conversations" to be a JSON schema object, got a string'),
    (_with(1, tools=TOOLS), '"tools" only on the system message (message 1) of "conversations", got it on '
                            'message 2, a user message'),
    (_with(1, tool_calls=CALLING["tool_calls"]), '"tool_calls" only on assistant messages of "conversations", '
                                                 'got them on message 2, a user message'),
    ({"conversations": [S, U, A, RESULT, A]},
     'a tool message in "conversations" only after an assistant message with tool_calls, or after another tool '
     'message, got one as message 4 after an assistant message'),
    ({"conversations": [U, RESULT, A]}, "got one as message 2 after a user message"),
    ({"conversations": [S, U, CALLING, U, A]},
     'message 4 of "conversations" to have role tool (the results of the tool_calls of message 3), got role user'),
    ({"conversations": [S, U, CALLING, RESULT, U]},
     'message 5 of "conversations" to have role assistant (turns alternate'),
    (_with(3, content={"result": "1"}), 'message 4 of "conversations" to have a string "content", got an object'),
    (_with(1, content=None), 'message 2 of "conversations" to have a string "content", got null'),
]


@pytest.mark.parametrize("bad,expected", BAD, ids=range(len(BAD)))
def test_bad_tool_line_names_file_and_line(tmp_path, bad, expected):
    tok = _tok("project")
    path = write_jsonl(tmp_path / "sft.jsonl", [GOOD, "", GOOD, bad, GOOD])
    with pytest.raises(DataError) as e:
        SFTDataset(path, tok, 64, verbose=False)
    msg = str(e.value)
    assert msg.startswith(f"{path}:4: expected "), msg
    assert expected in msg and "; " in msg and "\n" not in msg, msg
    assert e.value.line == 4 and e.value.path == path


def test_good_tool_line_loads_and_roleless_turns_follow_the_calls(tmp_path):
    tok = _tok("project")
    roleless = [{k: v for k, v in m.items() if k != "role"} for m in GOOD["conversations"][1:]]
    ds = SFTDataset(write_jsonl(tmp_path / "g.jsonl", [GOOD, {"conversations": [S] + roleless}]), tok, 4096,
                    verbose=False)
    assert len(ds) == 2 and all(torch.equal(a, b) for a, b in zip(ds[0], ds[1]))


def test_bad_tool_json_exits_2_in_one_line(tmp_path, capsys):
    import train_full_sft
    from trainer.errors import run_main
    path = write_jsonl(tmp_path / "sft.jsonl", [GOOD, BAD[0][0]])
    with pytest.raises(SystemExit) as e:
        run_main(train_full_sft.main, ["--data_path", path, "--from_weight", "none", "--dim", "32", "--n_layers",
                                       "1", "--max_seq_len", "64", "--tokenizer_path", TOKENIZERS["project"],
                                       "--out_dir", str(tmp_path / "out"), "--num_workers", "0"])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert e.value.code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert f"{path}:2: expected {BAD[0][1]}" in lines[0] and lines[0].endswith("; fix the JSON"), lines[0]
