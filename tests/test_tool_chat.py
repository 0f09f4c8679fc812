"""Tool calling in the chat (issue 26): model/agent.py's loop on scripted replies (calls run, results fed
back, errors as results, the turn limit, the streamed split), and eval_model.py / eval_llm.py --tools on
tests/tiny_chat.py's tool model, which calls calculate_math and answers from its result."""
import io
import json
import sys
import textwrap

import pytest
import torch

from tiny_chat import A_TOOL, DIM, LAYERS, Q_TOOL, TOOL_ARGS, TOOL_RESULT, tokenizer_dir, tool_state

import eval_model  # noqa: E402  (tiny_chat put the repo on sys.path)
from model import chat as model_chat  # noqa: E402
from model.agent import DEFAULT_MAX_TURNS, ToolCallStream, ToolLoop, split_reply  # noqa: E402
from model.chat import Chat, keep_history  # noqa: E402
from model.chat_cli import cli  # noqa: E402
from model.tools import format_tool_call, tool_response_text  # noqa: E402
from trainer.errors import UserError  # noqa: E402

CALC = format_tool_call("calculate_math", {"expression": "256*37"})
CONVERT = format_tool_call("unit_converter", {"value": 100, "from_unit": "km", "to_unit": "miles"})


def scripted(*replies):
    """generate(messages, turn) that answers with `replies` in turn, recording what it was given."""
    seen = []

    def generate(messages, turn):
        seen.append(([dict(m) for m in messages], turn))
        return replies[turn]
    return generate, seen


# --------------------------------------------------------------------------------- the loop

def test_calls_run_and_results_go_back_as_tool_messages():
    loop = ToolLoop.from_spec("calculate_math,unit_converter")
    shown = []
    generate, seen = scripted(f"Let me work it out.\n{CALC}\n{CONVERT}", "9472, and 62.1371 miles.")
    messages = [{"role": "user", "content": "256*37? 100 km in miles?"}]
    result = loop.run(messages, generate, on_call=shown.append)
    assert not result.unfinished and result.text == "9472, and 62.1371 miles." and len(result.turns) == 2
    first = result.turns[0]
    assert first.content == "Let me work it out." and [c.name for c in first.calls] == ["calculate_math", "unit_converter"]
    assert [c.result for c in shown] == [{"result": "9472"}, {"result": 62.1371}]
    # the assistant's turn as generated, then one tool message per call, in order, with its id
    assert messages == [
        {"role": "user", "content": "256*37? 100 km in miles?"},
        {"role": "assistant", "content": f"Let me work it out.\n{CALC}\n{CONVERT}"},
        {"role": "tool", "tool_call_id": "call_0_0", "content": '{"result": "9472"}'},
        {"role": "tool", "tool_call_id": "call_0_1", "content": '{"result": 62.1371}'}]
    assert seen[1] == (messages, 1) and len(seen[0][0]) == 1
    assert first.calls[0].openai() == {"id": "call_0_0", "type": "function", "function": {
        "name": "calculate_math", "arguments": '{"expression": "256*37"}'}}


def test_every_mistake_is_a_result_the_model_reads_never_an_exception():
    loop = ToolLoop.from_spec("calculate_math")
    bad = "".join([
        format_tool_call("no_such_tool", {}),
        format_tool_call("get_current_time", {}),                       # registered, but not chosen
        format_tool_call("calculate_math", {"expr": "1"}),              # wrong argument name
        format_tool_call("calculate_math", {"expression": "__import__('os').system('echo pwned')"}),
        format_tool_call("calculate_math", {"expression": "9**9**9**9"}),
        "<tool_call>\n{not json}\n</tool_call>"])
    generate, seen = scripted(bad, "sorry")
    messages = [{"role": "user", "content": "q"}]
    result = loop.run(messages, generate)
    errors = [json.loads(m["content"])["error"] for m in messages if m["role"] == "tool"]
    assert len(errors) == 6 and result.text == "sorry"
    assert "unknown tool 'no_such_tool'" in errors[0] and "unknown tool 'get_current_time'" in errors[1]
    assert "available: calculate_math" in errors[1]
    assert "expr" in errors[2] and "function calls are not allowed" in errors[3] and "too large" in errors[4]
    assert errors[5].startswith("malformed tool call")
    assert all(c.failed for c in result.turns[0].calls) and result.turns[0].calls[-1].shown().startswith("(malformed)")


def test_a_reply_with_only_a_broken_block_is_an_attempt_and_hears_why():
    content, calls = split_reply("<tool_call>\n{\"name\": \"calculate_math\", \"arguments\": {\"expression\": \"1+\n")
    assert len(calls) == 1 and calls[0].name == "" and "calculate_math" in calls[0].block
    content, calls = split_reply("A plain answer with a stray </tool_call> tag.")
    assert calls == [] and content == "A plain answer with a stray </tool_call> tag."


def test_turn_limit_stops_the_loop_and_leaves_the_last_calls_unrun():
    loop = ToolLoop.from_spec("calculate_math", max_turns=DEFAULT_MAX_TURNS)
    assert DEFAULT_MAX_TURNS == 3  # MiniMind's agent rollout
    generate, seen = scripted(CALC, CALC, CALC, "never asked")
    messages = [{"role": "user", "content": "q"}]
    result = loop.run(messages, generate)
    assert result.unfinished and len(seen) == 3 and len(result.turns) == 3
    assert [c.result for c in result.turns[-1].calls] == [None]
    assert [m["role"] for m in messages] == ["user"] + ["assistant", "tool"] * 2
    generate, seen = scripted(CALC)
    assert ToolLoop.from_spec("all", max_turns=1).run([{"role": "user", "content": "q"}], generate).unfinished


def test_stream_split_shows_text_before_the_call_and_holds_the_rest():
    text = f"Computing now. {CALC}\nThat was it."
    for size in (1, 3, 7, len(text)):
        s = ToolCallStream()
        shown = "".join(s.feed(text[i:i + size]) for i in range(0, len(text), size))
        assert "<" not in shown and shown == "Computing now."
        rest, calls = s.finish()
        assert rest == "\nThat was it." and calls == [{"name": "calculate_math", "arguments": {"expression": "256*37"}}]
    assert split_reply(text)[0] == "Computing now.\nThat was it."
    # no call: everything shows, a '<tool' that came to nothing and the trailing space included
    plain = "Use a <tool if you like, or < and > signs. "
    s = ToolCallStream()
    shown = "".join(s.feed(c) for c in plain)
    assert plain.startswith(shown) and shown + s.finish()[0] == plain


def test_unknown_names_and_bad_files_are_one_line_user_errors(tmp_path):
    with pytest.raises(UserError, match="unknown tool 'nope'"):
        ToolLoop.from_spec("calculate_math,nope")
    with pytest.raises(UserError, match="file.py:function"):
        ToolLoop.from_spec(str(tmp_path / "missing.py") + ":f")


def test_keep_history_never_starts_with_a_tool_result():
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": CALC},
            {"role": "tool", "content": "{}"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "a2"}]
    assert keep_history(msgs, 4) == msgs[-2:]
    assert keep_history(msgs, 5) == msgs[-2:]
    assert keep_history(msgs, 6) == msgs


def test_the_next_prompt_begins_with_the_last_prompt_and_the_reply(tool_tokenizer):
    """The turn with calls is kept as generated: the prompt after its results extends the prompt before
    it by exactly the reply and <|im_end|> (no re-rendering drift)."""
    args = type("A", (), dict(model_mode=1, history_cnt=0, enable_thinking=None))()
    chat = Chat(None, tool_tokenizer, args, tools=ToolLoop.from_spec("calculate_math"))
    messages = [{"role": "user", "content": Q_TOOL}]
    first = chat.prompt(messages)
    assert '"name": "calculate_math"' in first and "unit_converter" not in first
    call = format_tool_call("calculate_math", TOOL_ARGS)
    messages += chat.tools.messages_for(type("T", (), dict(text=call, calls=[]))())
    messages.append({"role": "tool", "content": tool_response_text(TOOL_RESULT)})
    assert chat.prompt(messages).startswith(first + call + tool_tokenizer.eos_token + "\n")


# ------------------------------------------------------------------------- eval_model.py --tools

@pytest.fixture(scope="module")
def tool_tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(tokenizer_dir()))


@pytest.fixture(scope="module")
def tool_out(tmp_path_factory, tool_tokenizer):
    out = tmp_path_factory.mktemp("tools")
    torch.save(tool_state(tool_tokenizer), out / f"full_sft_{DIM}.pth")
    return out


def run_chat(capsys, monkeypatch, out_dir, stdin, *extra, main=eval_model.cli):
    argv = ["--out_dir", str(out_dir), "--device", "cpu", "--dim", str(DIM), "--n_layers", str(LAYERS), "--mode", "1",
            *extra]
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


TRANSCRIPT = (f"👶: {Q_TOOL}\n"
              f"📞 [Tool Calling]: calculate_math({json.dumps(TOOL_ARGS)})\n"
              f"✅ [Tool Called]: {json.dumps(TOOL_RESULT)}\n"
              f"🤖️: {A_TOOL}\n\n")


@pytest.mark.parametrize("stream", ["1", "0"])
def test_eval_model_tools_runs_the_call_and_answers_from_its_result(tool_out, capsys, monkeypatch, stream):
    code, out, err = run_chat(capsys, monkeypatch, tool_out, Q_TOOL + "\n", "--tools", "calculate_math",
                              "--temperature", "0", "--stream", stream)
    assert code == 0, err
    assert out.split("\n", 2)[1] == "tools: calculate_math (at most 3 model turns per question)"
    assert out.split("\n", 2)[2] == TRANSCRIPT


def test_eval_llm_takes_tools_too_and_the_limit_is_a_flag(tool_out, capsys, monkeypatch):
    code, out, err = run_chat(capsys, monkeypatch, tool_out, Q_TOOL + "\n", "--tools", "calculate_math",
                              "--show_speed", "0", main=lambda a: cli(a, prog="eval_llm.py", later_names=True))
    assert code == 0 and out.endswith(TRANSCRIPT), err
    code, out, err = run_chat(capsys, monkeypatch, tool_out, Q_TOOL + "\n", "--tools", "calculate_math",
                              "--max_turns", "1", "--seed", "1")
    assert code == 0, err
    assert out.endswith(f"📞 [Tool Calling]: calculate_math({json.dumps(TOOL_ARGS)})\n"
                        "⏹ [Tool Limit]: this call not run: 1 model turns per question at most (--max_turns)\n\n")


def test_without_tools_the_call_is_just_text(tool_out, capsys, monkeypatch):
    """The tool model writes the call even when no tools were given; without --tools nothing runs."""
    code, out, err = run_chat(capsys, monkeypatch, tool_out, Q_TOOL + "\n", "--seed", "1")
    assert code == 0, err
    assert f"🤖️: {format_tool_call('calculate_math', TOOL_ARGS)}\n\n" in out and "Tool Call" not in out


def test_a_user_tool_from_a_file_runs(tool_out, capsys, monkeypatch, tmp_path):
    f = tmp_path / "my_tools.py"
    f.write_text(textwrap.dedent('''
        from model.tools import ToolRegistry, tool

        BUILTIN = ToolRegistry().schemas("calculate_math")[0]["function"]  # the prompt the model knows

        @tool(name="calculate_math", parameters=BUILTIN["parameters"], description=BUILTIN["description"])
        def spelled(expression):
            return {"result": "forty-two" if expression == "6*7" else "?"}
    '''))
    code, out, err = run_chat(capsys, monkeypatch, tool_out, Q_TOOL + "\n", "--tools", f"{f}:spelled", "--seed", "1")
    assert code == 0, err
    assert '✅ [Tool Called]: {"result": "forty-two"}\n' in out


@pytest.mark.parametrize("spec,needle", [
    ("calculate_math,weather", "unknown tool 'weather'"),
    ("nowhere.py:f", "expected path/to/file.py:function_name with an existing file"),
    ("{broken}:f", "has no function 'f'"),
    ("{syntax}:f", "importing"),
    (",", "no tools named"),
])
def test_bad_tools_flag_is_one_line_exit_2(capsys, monkeypatch, tmp_path, spec, needle):
    (tmp_path / "broken.py").write_text("x = 1\n")
    (tmp_path / "syntax.py").write_text("def f(:\n")
    spec = spec.format(broken=tmp_path / "broken.py", syntax=tmp_path / "syntax.py")
    # nothing is loaded before the flag is checked: the folder holds no weights at all
    code, out, err = run_chat(capsys, monkeypatch, tmp_path, "", "--tools", spec)
    assert code == 2 and err.count("\n") == 1 and needle in err and err.startswith("error: --tools"), err


def test_tools_need_a_chat_model(capsys, monkeypatch, tmp_path):
    code, out, err = run_chat(capsys, monkeypatch, tmp_path, "", "--tools", "all", "--model_mode", "0")
    assert code == 2 and err.count("\n") == 1 and "--tools needs a chat model" in err


def test_builtin_prompts_with_tools_are_minimind_tool_questions():
    from model.chat_cli import TOOL_PROMPTS, questions
    assert list(questions(0, 1, tools=True)) == TOOL_PROMPTS and "帮我算一下 256 乘以 37 等于多少" in TOOL_PROMPTS
    assert model_chat.CALL_TAG == "📞 [Tool Calling]: " and model_chat.RESULT_TAG == "✅ [Tool Called]: "
