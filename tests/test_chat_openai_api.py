"""scripts/chat_openai_api.py against the real server (scripts/serve_openai_api.py in a subprocess,
serving tests/tiny_chat.py's overfit model with --reasoning 1)."""
import io
import json
import re
import subprocess
import sys

import pytest
import torch

from tiny_chat import (A_MD, A_PLAIN, A_TOOL, ANSWER, DIM, LAYERS, Q_MD, Q_PLAIN, Q_THINK, Q_TOOL, ROOT, THINK,
                       TOOL_ARGS, TOOL_RESULT, chat_state, child_env, free_port, start_http, stop, tokenizer_dir,
                       tool_state)

from model.tools import format_tool_call  # noqa: E402

CLIENT = ROOT / "scripts" / "chat_openai_api.py"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from transformers import AutoTokenizer
    d = tmp_path_factory.mktemp("chat")
    torch.save(chat_state(AutoTokenizer.from_pretrained(str(tokenizer_dir()))), d / f"full_sft_{DIM}.pth")
    cmd = lambda port: [sys.executable, str(ROOT / "scripts" / "serve_openai_api.py"), "--out_dir", str(d),  # noqa: E731
                        "--dim", str(DIM), "--n_layers", str(LAYERS), "--device", "cpu", "--port", str(port),
                        "--reasoning", "1"]
    proc, port = start_http(cmd, "/health", d / "server.log")
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(proc)


def client(*args, stdin):
    """The script itself, as a person runs it (a subprocess, stdin piped)."""
    return subprocess.run([sys.executable, str(CLIENT), *args], input=stdin, capture_output=True, text=True,
                          timeout=120, env=child_env())


def client_inproc(capsys, monkeypatch, *args, stdin):
    """Its cli() in this process (no second interpreter to start): (exit code, stdout, stderr)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import chat_openai_api
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = chat_openai_api.cli(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_client_chats_with_the_server(server, capsys, monkeypatch):
    alone = client("--base_url", server, "--temperature", "0", "--history", "0", stdin=f"{Q_PLAIN}\n{Q_MD}\n{Q_THINK}\n")
    assert alone.returncode == 0, alone.stderr
    assert alone.stdout == (f"[Q]: {Q_PLAIN}\n[A]: {A_PLAIN}\n\n[Q]: {Q_MD}\n[A]: {A_MD}\n\n"
                            f"[Q]: {Q_THINK}\n[Think]: {THINK}\n[A]: {ANSWER}\n\n[Q]: \n"), alone.stdout
    # whole answers; a question longer than the model's context is refused in one line, the chat goes on
    huge = "DPO " * 40000
    code, out, err = client_inproc(capsys, monkeypatch, "--base_url", server, "--temperature", "0", "--history", "0",
                                   "--stream", "0", stdin=f"{Q_PLAIN}\n{huge}\n{Q_THINK}\n")
    assert code == 0, err
    assert out == f"[Q]: {Q_PLAIN}\n[A]: {A_PLAIN}\n\n[Q]: {huge}\n[Q]: {Q_THINK}\n[Think]: {THINK}\n[A]: {ANSWER}\n\n[Q]: \n"
    [line] = err.strip().split("\n")
    assert line.startswith("error: the server answered 400:") and "context" in line, line
    # --history 2 (the default) sends the first exchange with the second question: a conversation
    # this model never saw, so its second answer is no longer the one it learnt for the question alone
    code, out, err = client_inproc(capsys, monkeypatch, "--base_url", server, "--temperature", "0", "--max_tokens", "32",
                                   stdin=f"{Q_PLAIN}\n{Q_MD}\n")
    assert code == 0, err
    first, second = re.findall(r"^\[A\]: (.*)$", out, re.M)
    assert first == A_PLAIN and second != A_MD


def test_client_history_keeps_whole_exchanges():
    sys.path.insert(0, str(ROOT / "scripts"))
    import chat_openai_api as c
    msgs = [{"role": r, "content": str(i)} for i, r in enumerate(["user", "assistant"] * 3)]
    assert c.recent(msgs, 0) == [] and c.recent(msgs, 2) == msgs[-2:] and c.recent(msgs, 3) == msgs[-2:]


def test_client_without_a_server_is_one_line_exit_2(capsys, monkeypatch):
    code, out, err = client_inproc(capsys, monkeypatch, "--base_url", f"http://127.0.0.1:{free_port()}/v1",
                                   stdin=f"{Q_PLAIN}\n")
    assert code == 2, err
    [line] = err.strip().split("\n")
    assert "cannot reach the server" in line and "serve_openai_api.py" in line


# ------------------------------------------------------------------------------------- --tools

@pytest.fixture(scope="module")
def tool_server(tmp_path_factory):
    """The server on tiny_chat's tool model (calls calculate_math for Q_TOOL, answers from its result)."""
    from transformers import AutoTokenizer
    d = tmp_path_factory.mktemp("tools")
    torch.save(tool_state(AutoTokenizer.from_pretrained(str(tokenizer_dir()))), d / f"full_sft_{DIM}.pth")
    cmd = lambda port: [sys.executable, str(ROOT / "scripts" / "serve_openai_api.py"), "--out_dir", str(d),  # noqa: E731
                        "--dim", str(DIM), "--n_layers", str(LAYERS), "--device", "cpu", "--port", str(port)]
    proc, port = start_http(cmd, "/health", d / "server.log")
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(proc)


TOOL_TRANSCRIPT = (f"[Q]: {Q_TOOL}\n[Tool call]: calculate_math({json.dumps(TOOL_ARGS)})\n"
                   f"[Tool result]: {json.dumps(TOOL_RESULT)}\n[A]: {A_TOOL}\n\n")


def test_tools_demo_runs_the_round_trip(tool_server, capsys, monkeypatch):
    """--tools: the question goes with the tool's schema, the call that comes back is run here, its result
    sent back, and the model answers from it; streamed (a subprocess, as a person runs it) and whole."""
    done = client("--base_url", tool_server, "--temperature", "0", "--tools", "calculate_math", stdin=f"{Q_TOOL}\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == TOOL_TRANSCRIPT + "[Q]: \n", done.stdout
    code, out, err = client_inproc(capsys, monkeypatch, "--base_url", tool_server, "--temperature", "0", "--stream",
                                   "0", "--tools", "calculate_math", stdin=f"{Q_TOOL}\n")
    assert code == 0 and out == TOOL_TRANSCRIPT + "[Q]: \n", (out, err)
    # at most --max_turns requests: the second would have carried the result
    code, out, err = client_inproc(capsys, monkeypatch, "--base_url", tool_server, "--temperature", "0", "--max_turns",
                                   "1", "--tools", "calculate_math", stdin=f"{Q_TOOL}\n")
    assert code == 0 and out == (f"[Q]: {Q_TOOL}\n[Tool call]: calculate_math({json.dumps(TOOL_ARGS)})\n[Tool limit]: "
                                 "not run: 1 requests per question at most (--max_turns)\n\n[Q]: \n"), out
    # without --tools the call is text, as the model wrote it
    code, out, err = client_inproc(capsys, monkeypatch, "--base_url", tool_server, "--temperature", "0",
                                   stdin=f"{Q_TOOL}\n")
    assert code == 0 and f"[A]: {format_tool_call('calculate_math', TOOL_ARGS)}\n\n" in out


def test_tools_demo_unknown_tool_is_one_line_exit_2(capsys, monkeypatch):
    code, out, err = client_inproc(capsys, monkeypatch, "--tools", "calculate_math,calc", stdin=f"{Q_TOOL}\n")
    assert code == 2 and out == "" and err.count("\n") == 1 and "unknown tool 'calc'" in err, err


def test_tools_demo_history_never_starts_with_a_tool_result():
    sys.path.insert(0, str(ROOT / "scripts"))
    import chat_openai_api as c
    from model.agent import DEFAULT_MAX_TURNS
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": None, "tool_calls": []},
            {"role": "tool", "content": "{}"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "a2"}]
    assert c.recent(msgs, 4) == msgs[-2:] and c.recent(msgs, 6) == msgs
    assert c.MAX_TURNS == DEFAULT_MAX_TURNS
