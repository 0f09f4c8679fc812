"""The tiny chat model and the process helpers that tests/test_web_demo.py and
tests/test_chat_openai_api.py share.

The model (dim 64, 2 layers) is overfit in a few seconds, once per test process, on four exchanges:
a plain answer (checked word for word against eval_model.py), a Markdown answer with HTML in it, an
R1-style answer with <think>/<answer> tags, and a laugh that never ends (for the Stop button).
"""
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import eval_model  # noqa: E402
from model import MiniMindConfig, MiniMindForCausalLM  # noqa: E402
from model import chat as model_chat  # noqa: E402

DIM, LAYERS = 64, 2
Q_PLAIN, A_PLAIN = "What is DPO?", "Direct preference optimization, 直接偏好优化。"
Q_MD, A_MD = "Show me markdown.", "**Bold** words and <b>tags</b> 加粗"
Q_THINK, THINK, ANSWER = "Why is the sky blue?", "Sunlight scatters off the air.", "Rayleigh scattering, 瑞利散射。"
A_THINK = f"<think>\n{THINK}\n</think>\n<answer>\n{ANSWER}\n</answer>"
Q_LONG, A_LONG = "Laugh forever.", "ha " * 48  # learnt without <|im_end|>: it goes on until stopped
EXCHANGES = [(Q_PLAIN, A_PLAIN, True), (Q_MD, A_MD, True), (Q_THINK, A_THINK, True), (Q_LONG, A_LONG, False)]
SEED = 7
_TRAINED = {}

# The tool model: with calculate_math in the prompt it calls it, then answers from the result; asked
# without tools it writes the same call as plain text (what tool_choice "none" must leave unparsed).
Q_TOOL, TOOL_ARGS, TOOL_RESULT, A_TOOL = "What is 6 times 7?", {"expression": "6*7"}, {"result": "42"}, "6 × 7 = 42。"
TOOL_NAMES = "calculate_math"


def tool_rows(tokenizer):
    """The tool model's training rows: the call, the result, the answer in one conversation (the prompt
    after the result begins with the first prompt and the call); the call asked without tools."""
    from model.tools import ToolRegistry, format_tool_call, tool_response_text
    tools = ToolRegistry().schemas(TOOL_NAMES)
    call = format_tool_call("calculate_math", TOOL_ARGS) + tokenizer.eos_token
    q = [{"role": "user", "content": Q_TOOL}]
    first = tokenizer.apply_chat_template(q, tools=tools, tokenize=False, add_generation_prompt=True)
    after = tokenizer.apply_chat_template(q + [{"role": "assistant", "content": call[:-len(tokenizer.eos_token)]},
                                               {"role": "tool", "content": tool_response_text(TOOL_RESULT)}],
                                          tools=tools, tokenize=False, add_generation_prompt=True)
    assert after.startswith(first + call)
    plain = tokenizer.apply_chat_template(q, tokenize=False, add_generation_prompt=True)
    return [[(first, False), (call, True), (after[len(first + call):], False), (A_TOOL + tokenizer.eos_token, True)],
            [(plain, False), (call, True)]]


def tokenizer_dir():
    for d in (ROOT / "model", ROOT.parent / "shared" / "minimind_tokenizer"):
        if (d / "tokenizer.json").is_file():
            return d
    pytest.skip("no tokenizer (neither ./model nor ../shared/minimind_tokenizer)")


def tiny(dim=DIM, layers=LAYERS, **kw):
    return MiniMindForCausalLM(MiniMindConfig(hidden_size=dim, num_hidden_layers=layers, **kw))


def overfit(tokenizer, exchanges=EXCHANGES, steps=300):
    """A tiny chat model that has learnt these exchanges by heart (a few seconds on a CPU)."""
    rows = []
    for q, a, ends in exchanges:
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        rows.append([(prompt, False), (a + (tokenizer.eos_token if ends else ""), True)])
    return fit(tokenizer, rows, steps)


def fit(tokenizer, rows, steps=300, targets_only=False):
    """A tiny model trained until it knows each row's trained pieces: rows are [(text, trained)].
    targets_only: the output layer runs at the trained positions only (the same loss, several times
    faster for long prompts)."""
    torch.manual_seed(1)
    m = tiny()
    rows = [[(tokenizer(t, add_special_tokens=False)["input_ids"], trained) for t, trained in row] for row in rows]
    width = max(sum(len(t) for t, _ in row) for row in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    for i, row in enumerate(rows):
        at = 0
        for t, trained in row:
            ids[i, at:at + len(t)] = torch.tensor(t)
            if trained:
                labels[i, at:at + len(t)] = torch.tensor(t)
            at += len(t)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    m.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # about 80 steps, 3 s of one core; two threads on a shared machine crawl
    try:
        for _ in range(steps):
            if targets_only:
                hidden = m(ids, skip_logits=True).hidden_states[-1][:, :-1]
                at = labels[:, 1:] != -100
                loss = torch.nn.functional.cross_entropy(m.lm_head(hidden[at]).float(), labels[:, 1:][at])
            else:
                loss = m(ids, labels=labels).loss
            if loss.item() < 0.01:
                break
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    assert loss.item() < 0.03, f"overfit did not converge (loss {loss.item():.3f})"
    return m.eval()


def chat_state(tokenizer):
    """The overfit model's state dict, trained once per test process."""
    if "state" not in _TRAINED:
        _TRAINED["state"] = {k: v.clone() for k, v in overfit(tokenizer).state_dict().items()}
    return _TRAINED["state"]


def tool_state(tokenizer):
    """The tool model's state dict (Q_TOOL with calculate_math), trained once per test process."""
    if "tools" not in _TRAINED:
        model = fit(tokenizer, tool_rows(tokenizer), steps=400, targets_only=True)
        _TRAINED["tools"] = {k: v.clone() for k, v in model.state_dict().items()}
    return _TRAINED["tools"]


def eval_answer(out_dir, question, seed, *extra, weight=None, dim=DIM, layers=LAYERS):
    """What `eval_model.py --seed S` answers (its CLI, in this process, the question piped in)."""
    argv = ["--out_dir", str(out_dir), "--device", "cpu", "--dim", str(dim), "--n_layers", str(layers),
            "--seed", str(seed), "--mode", "1", *(["--weight", weight] if weight else []), *extra]
    old_in, old_out = sys.stdin, sys.stdout
    sys.stdin, sys.stdout = io.StringIO(question + "\n"), io.StringIO()
    try:
        code = eval_model.cli(argv)
        out = sys.stdout.getvalue()
    finally:
        sys.stdin, sys.stdout = old_in, old_out
    assert code == 0, out
    return out.split(model_chat.BOT_TAG, 1)[1].split("\n\n", 1)[0]


# ------------------------------------------------------------------------------ processes

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env():
    return dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")


def start_http(cmd_for_port, health, log, timeout=180, attempts=3):
    """Start `cmd_for_port(port)` on a free port and wait for http://127.0.0.1:PORT{health};
    (process, port). A port taken by someone else before the server bound it: another port."""
    for attempt in range(attempts):
        port = free_port()
        with open(log, "w") as f:
            proc = subprocess.Popen(cmd_for_port(port), stdout=f, stderr=subprocess.STDOUT, env=child_env(), cwd=ROOT)
        deadline = time.time() + timeout
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{health}", timeout=2) as r:
                    if r.status == 200:
                        return proc, port
            except OSError:
                time.sleep(0.2)
        stop(proc)
        text = Path(log).read_text(errors="replace")
        if not any(w in text for w in ("in use", "could not serve", "Errno 98")):
            break
    raise AssertionError(f"{cmd_for_port(port)[:4]}...: no answer on {health}:\n{text[-3000:]}")


def stop(proc):
    """Ctrl-C, as a person would; killed if it does not end in 20 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
