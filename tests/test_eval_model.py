"""eval_model.py: modes 0/1/2, auto and manual input, --load 1, history, seeds, streaming, exits.

Tiny models (dim 64, 2 layers) are made here: a random one for text continuation, and one overfit
in a few seconds on a single question so that its answer can be checked word for word.
"""
import io
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import eval_model  # noqa: E402
from model import chat_cli  # noqa: E402
from model import MiniMindConfig, MiniMindForCausalLM  # noqa: E402
from model import chat as model_chat  # noqa: E402
from model.generation import AnswerStreamer  # noqa: E402
from model.loading import checkpoint_maker  # noqa: E402

DIM, LAYERS = 64, 2
QUESTION = "What is DPO?"
ANSWER = "Direct preference optimization, 直接偏好优化。"
SIZE = ["--dim", str(DIM), "--n_layers", str(LAYERS)]


def _tokenizer_dir():
    for d in (ROOT / "model", ROOT.parent / "shared" / "minimind_tokenizer"):
        if (d / "tokenizer.json").is_file():
            return d
    pytest.skip("no tokenizer (neither ./model nor ../shared/minimind_tokenizer)")


@pytest.fixture(scope="module")
def tok_dir():
    return str(_tokenizer_dir())


@pytest.fixture(scope="module")
def tokenizer(tok_dir):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tok_dir)


def _tiny(seed=0):
    torch.manual_seed(seed)
    return MiniMindForCausalLM(MiniMindConfig(hidden_size=DIM, num_hidden_layers=LAYERS))


def _overfit(tokenizer, max_steps=120):
    """A tiny chat model that has learned one exchange by heart."""
    m = _tiny(1)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}], tokenize=False,
                                           add_generation_prompt=True)
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(ANSWER + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p_ids + a_ids])
    labels = ids.clone()
    labels[0, :len(p_ids)] = -100
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    m.train()
    for _ in range(max_steps):  # about 40 steps
        loss = m(ids, labels=labels).loss
        if loss.item() < 0.02:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05, f"overfit did not converge (loss {loss.item():.3f})"
    return m.eval()


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory, tokenizer):
    """out dir with pretrain_64.pth (random), full_sft_64.pth and rlhf_64.pth (overfit)."""
    out = tmp_path_factory.mktemp("out")
    rand = _tiny(0)
    # Zero the <|im_end|> row so a greedy random model never stops on its own (Ctrl-C test).
    with torch.no_grad():
        rand.model.embed_tokens.weight[tokenizer.eos_token_id].zero_()
    torch.save(rand.state_dict(), out / f"pretrain_{DIM}.pth")
    chat = _overfit(tokenizer)
    torch.save(chat.state_dict(), out / f"full_sft_{DIM}.pth")
    torch.save({k: v.half() for k, v in chat.state_dict().items()}, out / f"rlhf_{DIM}.pth")
    return out, chat


def run_inproc(capsys, monkeypatch, argv, stdin_text):
    """eval_model.cli(argv) with `stdin_text` piped in -> (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin_text))
    try:
        code = eval_model.cli(argv)
    except SystemExit as e:
        code = e.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def answers(out):
    """[(question, answer)] from a transcript of 👶:/🤖️: blocks."""
    pairs, q = [], None
    for block in out.split(model_chat.USER_TAG)[1:]:
        q, _, rest = block.partition("\n")
        if not q and not rest:  # the empty line that ended a manual session
            continue
        assert rest.startswith(model_chat.BOT_TAG), block
        pairs.append((q, rest[len(model_chat.BOT_TAG):].rstrip("\n")))
    return pairs


def base_args(out_dir, tok_dir, *extra):
    return ["--out_dir", str(out_dir), "--tokenizer_path", tok_dir, "--device", "cpu", *SIZE, *extra]


# ------------------------------------------------------------------------------- prompts

def test_build_prompt_pretrain_is_plain_text_chat_uses_template(tokenizer):
    msgs = [{"role": "user", "content": "万有引力"}]
    assert model_chat.build_prompt(tokenizer, msgs, 0) == tokenizer.bos_token + "万有引力"
    chat = model_chat.build_prompt(tokenizer, msgs, 1)
    assert "user\n万有引力" in chat and chat.rstrip().endswith("assistant")
    assert model_chat.build_prompt(tokenizer, msgs, 2) == chat


def test_keep_history_counts_messages_and_never_starts_with_an_answer():
    msgs = [{"role": r, "content": str(i)} for i, r in enumerate(["user", "assistant"] * 3)]
    assert model_chat.keep_history(msgs, 0) == []
    assert model_chat.keep_history(msgs, 2) == msgs[-2:]
    assert model_chat.keep_history(msgs, 3) == msgs[-2:]  # the orphaned answer is dropped
    assert model_chat.keep_history(msgs, 100) == msgs


# ------------------------------------------------------------------------ modes 0, 1, 2

def test_mode0_auto_continues_every_builtin_prompt(ckpts, tok_dir, capsys, monkeypatch):
    out_dir, _ = ckpts
    code, out, err = run_inproc(capsys, monkeypatch, base_args(out_dir, tok_dir, "--model_mode", "0",
                                                               "--max_new_tokens", "6"), "0\n")
    assert code == 0, err
    assert "[0] 自动测试\n[1] 手动输入" in out
    got = answers(out)
    assert [q for q, _ in got] == chat_cli.CONTINUATION_PROMPTS
    assert any(any("\u4e00" <= c <= "\u9fff" for c in q) for q, _ in got)  # Chinese and English
    assert any(q.isascii() for q, _ in got)
    assert all(a for _, a in got)


def test_mode0_manual_pipe(ckpts, tok_dir, capsys, monkeypatch):
    out_dir, _ = ckpts
    code, out, err = run_inproc(capsys, monkeypatch, base_args(out_dir, tok_dir, "--model_mode", "0",
                                                               "--max_new_tokens", "5"), "1\n人工智能\nThe sky\n")
    assert code == 0, err
    assert [q for q, _ in answers(out)] == ["人工智能", "The sky"]


def test_mode1_overfit_model_answers_right(ckpts, tok_dir, capsys, monkeypatch):
    out_dir, _ = ckpts
    for extra in (["--temperature", "0"], ["--temperature", "0.1", "--seed", "5"]):
        code, out, err = run_inproc(capsys, monkeypatch, base_args(out_dir, tok_dir, "--model_mode", "1", *extra),
                                    f"1\n{QUESTION}\n")
        assert code == 0, err
        assert answers(out) == [(QUESTION, ANSWER)], out


def test_mode2_auto_and_manual(ckpts, tok_dir, capsys, monkeypatch):
    out_dir, _ = ckpts  # rlhf_64.pth is stored in float16, as the training scripts save it
    code, out, err = run_inproc(capsys, monkeypatch, base_args(out_dir, tok_dir, "--model_mode", "2",
                                                               "--max_new_tokens", "4"), "0\n")
    assert code == 0, err
    assert [q for q, _ in answers(out)] == chat_cli.CHAT_PROMPTS
    code, out, err = run_inproc(capsys, monkeypatch, base_args(out_dir, tok_dir, "--model_mode", "2",
                                                               "--temperature", "0"), f"1\n{QUESTION}\n")
    assert code == 0, err
    assert answers(out) == [(QUESTION, ANSWER)]


def test_mode_flag_skips_the_menu(ckpts, tok_dir, capsys, monkeypatch):
    out_dir, _ = ckpts
    code, out, err = run_inproc(capsys, monkeypatch, base_args(out_dir, tok_dir, "--mode", "1", "--temperature", "0"),
                                f"{QUESTION}\n")
    assert code == 0, err
    assert "自动测试" not in out
    assert answers(out) == [(QUESTION, ANSWER)]


def test_weight_flag_picks_another_name(ckpts, tok_dir, capsys, monkeypatch, tmp_path):
    out_dir, chat = ckpts
    torch.save(chat.state_dict(), tmp_path / f"my_run_{DIM}.pth")
    code, out, err = run_inproc(capsys, monkeypatch,
                                base_args(tmp_path, tok_dir, "--weight", "my_run", "--mode", "1", "--temperature", "0"),
                                f"{QUESTION}\n")
    assert code == 0, err
    assert answers(out) == [(QUESTION, ANSWER)]


def test_load1_transformers_directory(ckpts, tokenizer, capsys, monkeypatch, tmp_path):
    _, chat = ckpts
    hf_dir = tmp_path / "MiniMind2-tiny"
    chat.save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    # no --dim/--n_layers/--tokenizer_path: the directory's config.json and tokenizer decide
    code, out, err = run_inproc(capsys, monkeypatch, ["--load", "1", "--model_path", str(hf_dir), "--device", "cpu",
                                                      "--temperature", "0"], f"1\n{QUESTION}\n")
    assert code == 0, err
    assert answers(out) == [(QUESTION, ANSWER)]


def test_load1_missing_directory_is_one_line(capsys, monkeypatch, tmp_path):
    code, out, err = run_inproc(capsys, monkeypatch, ["--load", "1", "--model_path", str(tmp_path / "nope")], "1\n")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "config.json" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- history

def test_history_prompt_contains_earlier_turn(ckpts, tokenizer, capsys):
    _, chat_model = ckpts

    def chat_with(history_cnt):
        args = chat_cli.get_parser().parse_args(["--history_cnt", str(history_cnt), "--temperature", "0",
                                                   "--max_new_tokens", "30"])
        return model_chat.Chat(chat_model, tokenizer, args, out=io.StringIO())

    c = chat_with(2)
    assert c.ask(QUESTION) == ANSWER
    second = c.prompt_for("And RLHF?")
    assert QUESTION in second and ANSWER in second and second.count("user\n") == 2
    assert second.index(QUESTION) < second.index(ANSWER) < second.index("And RLHF?")
    # the prompt is the chat template over [q1, a1, q2], exactly
    assert second == tokenizer.apply_chat_template(
        [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": ANSWER},
         {"role": "user", "content": "And RLHF?"}], tokenize=False, add_generation_prompt=True)

    c0 = chat_with(0)
    c0.ask(QUESTION)
    assert QUESTION not in c0.prompt_for("And RLHF?")


def test_history_end_to_end(ckpts, tok_dir, capsys, monkeypatch):
    out_dir, _ = ckpts
    seen = []
    real = model_chat.build_prompt

    def spy(tokenizer, messages, model_mode, enable_thinking=None):
        text = real(tokenizer, messages, model_mode, enable_thinking)
        seen.append(text)
        return text

    monkeypatch.setattr(model_chat, "build_prompt", spy)
    code, out, err = run_inproc(capsys, monkeypatch,
                                base_args(out_dir, tok_dir, "--history_cnt", "2", "--temperature", "0"),
                                f"1\n{QUESTION}\nWhy?\n")
    assert code == 0, err
    (q1, a1), (q2, _) = answers(out)
    assert (q1, a1) == (QUESTION, ANSWER) and q2 == "Why?"
    assert len(seen) == 2
    assert QUESTION not in seen[0].replace(QUESTION, "", 1)  # first prompt: the question once, no history
    assert QUESTION in seen[1] and ANSWER in seen[1] and "Why?" in seen[1]


def test_generation_uses_generate_with_the_kv_cache(ckpts, tokenizer, monkeypatch):
    _, chat_model = ckpts
    args = chat_cli.get_parser().parse_args(["--temperature", "0", "--stream", "1"])
    chat = model_chat.Chat(chat_model, tokenizer, args, out=io.StringIO())
    prompt_len = len(tokenizer(chat.prompt_for(QUESTION), add_special_tokens=False)["input_ids"])
    fed = []
    real_forward = chat_model.forward

    def spy(input_ids, *a, **kw):
        fed.append(input_ids.shape[1])
        return real_forward(input_ids, *a, **kw)

    monkeypatch.setattr(chat_model, "forward", spy)
    assert chat.ask(QUESTION) == ANSWER
    # the prompt once, then one new token per step: the cache holds everything else
    assert fed[0] == prompt_len and len(fed) > 5 and set(fed[1:]) == {1}


# ---------------------------------------------------------------------- seeds, streaming

def _continuations(capsys, monkeypatch, out_dir, tok_dir, *extra, stdin="1\nThe sky\nThe sky\n"):
    code, out, err = run_inproc(capsys, monkeypatch, base_args(out_dir, tok_dir, "--model_mode", "0",
                                                               "--temperature", "1.0", "--top_p", "0.95",
                                                               "--max_new_tokens", "24", *extra), stdin)
    assert code == 0, err
    return [a for _, a in answers(out)]


def test_seed_makes_answers_reproducible(ckpts, tok_dir, capsys, monkeypatch):
    out_dir, _ = ckpts
    a = _continuations(capsys, monkeypatch, out_dir, tok_dir, "--seed", "7")
    b = _continuations(capsys, monkeypatch, out_dir, tok_dir, "--seed", "7")
    c = _continuations(capsys, monkeypatch, out_dir, tok_dir, "--seed", "8")
    assert a == b
    assert a[0] == a[1]  # the seed is re-applied per question
    assert c != a
    # default: a fresh random seed per question (24 sampled tokens out of 6400 never repeat by chance)
    d = _continuations(capsys, monkeypatch, out_dir, tok_dir)
    assert d[0] != d[1]


def test_stream_and_whole_answer_print_the_same(ckpts, tok_dir, capsys, monkeypatch):
    out_dir, _ = ckpts
    stdin = "1\n人工智能是\nThe sky\n"
    streamed = _continuations(capsys, monkeypatch, out_dir, tok_dir, "--seed", "3", "--stream", "1", stdin=stdin)
    whole = _continuations(capsys, monkeypatch, out_dir, tok_dir, "--seed", "3", "--stream", "0", stdin=stdin)
    assert streamed == whole and all(streamed)


def test_streamer_never_prints_a_broken_character(tokenizer):
    """Bytes of one character spread over tokens arrive whole; a cut-off tail is dropped."""
    # one byte-level token per UTF-8 byte of "偏好" (6 bytes), so most steps hold half a character
    table = _byte_to_unicode()
    byte_tokens = [tokenizer.convert_tokens_to_ids(table[b]) for b in "偏好".encode()]
    assert all(t is not None and t != tokenizer.unk_token_id for t in byte_tokens)
    streamer = AnswerStreamer(tokenizer, skip_prompt=False, skip_special_tokens=True)
    for t in byte_tokens[:-1]:  # the last byte of 好 never comes, as when max_new_tokens cuts it
        streamer.put(torch.tensor([t]))
    streamer.end()
    pieces = list(streamer)
    assert "".join(pieces) == "偏"
    assert all("\ufffd" not in p for p in pieces)


def _byte_to_unicode():
    # GPT-2's byte -> printable character table used by byte-level BPE vocabularies
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


# ------------------------------------------------------------------------- termination

def test_empty_line_and_eof_end_the_session(ckpts, tok_dir, capsys, monkeypatch):
    out_dir, _ = ckpts
    args = base_args(out_dir, tok_dir, "--temperature", "0")
    code, out, _ = run_inproc(capsys, monkeypatch, args, f"1\n{QUESTION}\n\nignored after the empty line\n")
    assert code == 0 and [q for q, _ in answers(out)] == [QUESTION]
    code, out, _ = run_inproc(capsys, monkeypatch, args, f"1\n{QUESTION}")  # EOF without a newline
    assert code == 0 and answers(out) == [(QUESTION, ANSWER)]
    code, out, err = run_inproc(capsys, monkeypatch, args, "")  # EOF at the menu
    assert code == 0 and answers(out) == [] and err == ""


def test_bad_menu_choice_is_one_line(ckpts, tok_dir, capsys, monkeypatch):
    out_dir, _ = ckpts
    code, _, err = run_inproc(capsys, monkeypatch, base_args(out_dir, tok_dir), "2\n")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "expected 0" in err


@pytest.mark.parametrize("mode,name,script", [(0, "pretrain", "train_pretrain.py"),
                                              (1, "full_sft", "train_full_sft.py"),
                                              (2, "rlhf", "train_dpo.py")])
def test_missing_weights_name_file_and_script(mode, name, script, tok_dir, capsys, monkeypatch, tmp_path):
    code, out, err = run_inproc(capsys, monkeypatch, base_args(tmp_path, tok_dir, "--model_mode", str(mode)), "0\n")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert os.path.join(str(tmp_path), f"{name}_{DIM}.pth") in lines[0] and script in lines[0]
    assert "Traceback" not in err


def test_missing_weights_hint_for_other_names_and_paths():
    assert checkpoint_maker("out/full_sft_768_moe.pth") == "train_full_sft.py"
    assert checkpoint_maker("/ckpt/rlhf_512.pth") == "train_dpo.py"
    assert "--save_weight my_run" in checkpoint_maker("out/my_run_512.pth")


def _script(args, **kw):
    return subprocess.Popen([sys.executable, str(ROOT / "eval_model.py"), *args], cwd=ROOT, text=True,
                            encoding="utf-8", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def test_script_with_a_real_pipe(ckpts, tok_dir):
    """As a user runs it: `printf '1\\nWhat is DPO?\\n' | python eval_model.py ...`, exit 0 at EOF."""
    out_dir, _ = ckpts
    p = _script(base_args(out_dir, tok_dir, "--temperature", "0"))
    out, err = p.communicate(f"1\n{QUESTION}\n", timeout=120)
    assert p.returncode == 0, err
    assert answers(out) == [(QUESTION, ANSWER)]
    assert "Traceback" not in err


class _CtrlCStdin(io.StringIO):
    """stdin whose next read is interrupted by Ctrl-C."""

    def readline(self, *a):
        raise KeyboardInterrupt


def test_ctrl_c_at_the_prompt_exits_quietly(ckpts, tok_dir, capsys, monkeypatch):
    out_dir, _ = ckpts
    monkeypatch.setattr(sys, "stdin", _CtrlCStdin())
    with pytest.raises(SystemExit) as e:
        eval_model.cli(base_args(out_dir, tok_dir, "--mode", "1"))
    assert e.value.code == 130
    assert capsys.readouterr().err == ""


def _read_until(stream, marker, deadline):
    seen = ""
    while marker not in seen:
        ch = stream.read(1)
        if not ch or time.time() > deadline:
            raise AssertionError(f"never saw {marker!r}; got {seen!r}")
        seen += ch
    return seen


@pytest.mark.skipif(os.name != "posix", reason="SIGINT delivery")
def test_ctrl_c_while_answering_stops_generation(ckpts, tok_dir):
    out_dir, _ = ckpts
    # in the middle of a long answer (greedy, and this model cannot emit <|im_end|>)
    # 30000 new tokens would take this model many minutes even on an idle machine, so a process
    # that exits within the timeout below did stop its generation thread (no wall-clock bound)
    budget = 30000
    p = _script(base_args(out_dir, tok_dir, "--mode", "1", "--model_mode", "0", "--temperature", "0",
                          "--max_new_tokens", str(budget)))
    p.stdin.write("The sky\n")
    p.stdin.flush()
    _read_until(p.stdout, model_chat.BOT_TAG, time.time() + 300)
    assert p.stdout.read(3)  # the answer is on screen while it is still being generated
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "Traceback" not in err, err
    assert len(out) < budget // 2, "the answer ran on after Ctrl-C"


def test_missing_weights_lists_what_the_folder_holds_with_its_flags(ckpts, tok_dir, capsys, monkeypatch):
    out_dir, _ = ckpts  # holds *_64.pth of 2 layers; ask for a 128-wide model
    args = base_args(out_dir, tok_dir, "--model_mode", "2", "--dim", "128")
    code, _, err = run_inproc(capsys, monkeypatch, args, "0\n")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "rlhf_128.pth: weights not found" in err
    assert f"{out_dir} holds " in err
    for name in ("pretrain", "full_sft", "rlhf"):
        assert f"{name}_{DIM}.pth (--dim {DIM} --n_layers {LAYERS})" in err, err
    assert "_resume" not in err


# ------------------------------------------------------------------------------- eval_llm.py (MiniMind 2025-10's name)

def run_llm(capsys, monkeypatch, argv, stdin_text):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin_text))
    try:
        code = chat_cli.cli(argv, prog="eval_llm.py", later_names=True)  # what eval_llm.py runs
    except SystemExit as e:
        code = e.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_eval_llm_takes_minimind_2510s_command_line(ckpts, tok_dir, capsys, monkeypatch, tmp_path):
    """Its flags as MiniMind's README types them: --save_dir/--hidden_size/--num_hidden_layers/--weight, a
    [Speed] line after each answer (--show_speed 0: none), --load_from a transformers folder."""
    out_dir, chat = ckpts
    argv = ["--save_dir", str(out_dir), "--hidden_size", str(DIM), "--num_hidden_layers", str(LAYERS),
            "--tokenizer_path", tok_dir, "--device", "cpu", "--temperature", "0"]
    code, out, err = run_llm(capsys, monkeypatch, argv, f"1\n{QUESTION}\n")  # --weight full_sft by default
    assert code == 0, err
    speed = re.findall(r"^\[Speed\]: (\d+\.\d+) tokens/s$", out, re.M)
    assert len(speed) == 1 and float(speed[0]) > 0, out
    assert answers(out.replace(f"[Speed]: {speed[0]} tokens/s\n", "")) == [(QUESTION, ANSWER)], out
    code, out, err = run_llm(capsys, monkeypatch, argv + ["--weight", "dpo", "--show_speed", "0"], f"1\n{QUESTION}\n")
    assert code == 0, err
    assert "[Speed]" not in out and answers(out) == [(QUESTION, ANSWER)]  # dpo: MiniMind's later name of rlhf
    hf_dir = tmp_path / "MiniMind2-tiny"
    chat.save_pretrained(hf_dir)
    from transformers import AutoTokenizer
    AutoTokenizer.from_pretrained(tok_dir).save_pretrained(hf_dir)
    code, out, err = run_llm(capsys, monkeypatch, ["--load_from", str(hf_dir), "--device", "cpu", "--temperature", "0",
                                                   "--show_speed", "0"], f"1\n{QUESTION}\n")
    assert code == 0, err
    assert answers(out) == [(QUESTION, ANSWER)]


def test_eval_llm_weight_picks_the_chat_and_the_seed_is_fixed(ckpts, tok_dir, capsys, monkeypatch):
    out_dir, _ = ckpts
    assert [chat_cli.later_mode(w) for w in ("pretrain", "full_sft", "rlhf", "dpo", "reason", "grpo", "ppo_actor",
                                             "spo", "agent", "full_dist", "out/reason_512.pth")] == \
        [0, 1, 2, 2, 3, 3, 3, 3, 3, 1, 3]
    p = chat_cli.get_parser("eval_llm.py", later_names=True)
    a = chat_cli.apply_later_names(p.parse_args(["--historys", "2", "--lora_weight", "lora_identity"]))
    assert (a.history_cnt, a.lora_name, a.weight, a.model_mode, a.seed, a.load) == (2, "lora_identity", "full_sft", 1, 2026, 0)
    assert chat_cli.apply_later_names(p.parse_args([])).lora_name is None  # its default "None": no adapter
    argv = ["--save_dir", str(out_dir), "--hidden_size", str(DIM), "--num_hidden_layers", str(LAYERS),
            "--tokenizer_path", tok_dir, "--device", "cpu", "--max_new_tokens", "6", "--show_speed", "0"]
    code, out, err = run_llm(capsys, monkeypatch, argv + ["--weight", "pretrain"], "0\n")
    assert code == 0, err
    assert [q for q, _ in answers(out)] == chat_cli.CONTINUATION_PROMPTS  # pretrain: text continuation
    sampled = [run_llm(capsys, monkeypatch, argv + ["--max_new_tokens", "12"], f"1\n{QUESTION}\n")[1] for _ in range(2)]
    assert sampled[0] == sampled[1]  # temperature 0.85, but seeded with 2026 before every answer, as MiniMind
    code, out, err = run_llm(capsys, monkeypatch, argv + ["--weight", "nope"], "1\n")
    assert code == 2 and "nope_64.pth" in err and "Traceback" not in err


def test_eval_llm_script_is_the_chat(ckpts, tok_dir):
    out_dir, _ = ckpts
    r = subprocess.run([sys.executable, str(ROOT / "eval_llm.py"), "--save_dir", str(out_dir), "--hidden_size", str(DIM),
                        "--num_hidden_layers", str(LAYERS), "--tokenizer_path", tok_dir, "--device", "cpu",
                        "--temperature", "0"], input=f"1\n{QUESTION}\n", capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert ANSWER in r.stdout and "[Speed]:" in r.stdout
