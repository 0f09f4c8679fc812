"""trainer.errors / trainer.checkpoint / trainer.args: the pieces other tools import."""
import argparse
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from trainer.args import add_common_args, add_model_args, resolve_dtype, str2bool  # noqa: E402
from trainer.checkpoint import (atomic_save, describe_state_dict, load_weights, made_by,  # noqa: E402
                                remove_stale_temps, resume_path, save_weights, weight_path)
from trainer.errors import UserError  # noqa: E402


def sigkill_after_first_save(cmd, **popen_kwargs):
    """Run a training command and SIGKILL it at the first step it logs after its first save (a crash
    mid-run with a resume file on disk), for the tests that then continue it with --from_resume 1."""
    import signal
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, **popen_kwargs)
    saved = False
    for line in p.stdout:
        saved = saved or line.startswith("saved ")
        if saved and line.startswith("epoch "):
            os.kill(p.pid, signal.SIGKILL)
            break
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL, f"it finished before it could be killed (exit {p.returncode})"


def kill_and_resume(script, argv, a_dir, b_dir, total):
    """The RL scripts' exact-resume check, first half: `argv` (already run uninterrupted into a_dir, logging
    `total` steps) runs again into b_dir, is SIGKILLed after its first save and resumed there. Returns
    (the resumed process, its start step); assert_continues compares its log with the uninterrupted one."""
    import re
    a_dir, b_dir = str(a_dir), str(b_dir)
    b_argv = [b_dir if x == a_dir else x for x in argv]
    env = dict(os.environ, PYTHONPATH=ROOT)
    sigkill_after_first_save([sys.executable, "-u", os.path.join(ROOT, script), *b_argv], cwd=ROOT, env=env)
    r = subprocess.run([sys.executable, "-u", os.path.join(ROOT, script), *b_argv, "--from_resume", "1"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    start = int(re.search(r"resumed from epoch \d+ step (\d+)", r.stdout).group(1))
    assert 0 < start < total
    return r, start


def assert_continues(uninterrupted, resumed, start, total, keys):
    """Each key's logged values after `start` in `resumed` are the uninterrupted run's, every step logged."""
    from test_train_scripts import logged
    for key in keys:
        later = logged(resumed, key)
        assert sorted(later) == list(range(start + 1, total + 1)), key
        assert later == {s: v for s, v in logged(uninterrupted, key).items() if s > start}, key


def same_weights(path_a, path_b):
    wa, wb = torch.load(path_a, weights_only=True), torch.load(path_b, weights_only=True)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


class FakeLM(nn.Module):
    """Same key layout as MiniMind2 (embed, layers.N, tied lm_head), no model package needed."""

    def __init__(self, dim=8, n_layers=2, vocab=16, moe=False):
        super().__init__()
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(vocab, dim)
        self.model.layers = nn.ModuleList()
        for _ in range(n_layers):
            layer = nn.Module()
            layer.mlp = nn.Module()
            if moe:
                layer.mlp.experts = nn.ModuleList([nn.Linear(dim, dim, bias=False) for _ in range(2)])
            else:
                layer.mlp.gate_proj = nn.Linear(dim, dim, bias=False)
            self.model.layers.append(layer)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.model.embed_tokens.weight


def test_weight_names():
    assert weight_path("out", "pretrain", 768, False) == os.path.join("out", "pretrain_768.pth")
    assert weight_path("out", "pretrain", 640, True) == os.path.join("out", "pretrain_640_moe.pth")
    assert resume_path("o", "rlhf", 512, False) == os.path.join("o", "rlhf_512_resume.pth")
    assert made_by("full_sft_2048") == "train_full_sft.py"
    assert made_by("rlhf") == "train_dpo.py"


def test_save_load_roundtrip_keeps_tied_storage(tmp_path):
    m = FakeLM()
    p = str(tmp_path / "w.pth")
    save_weights(m, p, dtype=None)
    sd = torch.load(p, weights_only=True)
    assert sd["lm_head.weight"].data_ptr() == sd["model.embed_tokens.weight"].data_ptr()
    m2 = FakeLM()
    load_weights(m2, p)
    assert torch.equal(m2.model.layers[1].mlp.gate_proj.weight, m.model.layers[1].mlp.gate_proj.weight)
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


def test_half_save_is_loadable_into_float_model(tmp_path):
    m = FakeLM()
    p = str(tmp_path / "w.pth")
    save_weights(m, p)  # default float16 like MiniMind2
    assert torch.load(p, weights_only=True)["lm_head.weight"].dtype == torch.float16
    m2 = load_weights(FakeLM(), p)
    assert m2.lm_head.weight.dtype == torch.float32
    assert torch.allclose(m2.lm_head.weight, m.lm_head.weight, atol=1e-3)


def test_missing_checkpoint_names_file_and_script(tmp_path):
    p = str(tmp_path / "pretrain_8.pth")
    with pytest.raises(UserError) as e:
        load_weights(FakeLM(), p, made_by="train_pretrain.py")
    msg = str(e.value)
    assert p in msg and "train_pretrain.py" in msg and "\n" not in msg


def test_mismatched_dims_name_held_and_asked(tmp_path):
    p = str(tmp_path / "w.pth")
    save_weights(FakeLM(dim=8, n_layers=3), p)
    with pytest.raises(UserError) as e:
        load_weights(FakeLM(dim=16, n_layers=2), p)
    msg = str(e.value)
    assert "--dim 8 --n_layers 3 --use_moe 0" in msg and "--dim 16 --n_layers 2 --use_moe 0" in msg
    save_weights(FakeLM(moe=True), p)
    assert describe_state_dict(torch.load(p, weights_only=True))["use_moe"] is True
    with pytest.raises(UserError, match="--use_moe 1.*--use_moe 0"):
        load_weights(FakeLM(moe=False), p)


def test_garbage_file_is_a_user_error(tmp_path):
    p = tmp_path / "w.pth"
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint"):
        load_weights(FakeLM(), str(p))


def test_atomic_save_never_leaves_partial_file(tmp_path, monkeypatch):
    p = str(tmp_path / "a.pth")
    atomic_save({"x": torch.ones(3)}, p)

    def boom(*a, **k):
        raise RuntimeError("disk died")
    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError):
        atomic_save({"x": torch.zeros(3)}, p)
    assert torch.equal(torch.load(p, weights_only=True)["x"], torch.ones(3))
    assert os.listdir(tmp_path) == ["a.pth"]
    # what a SIGKILL mid-save leaves: a temp file, cleaned up by the next run
    (tmp_path / ".a.pth.x1y2.tmp").write_bytes(b"half")
    (tmp_path / ".b.pth.x1y2.tmp").write_bytes(b"someone else's")
    remove_stale_temps(p)
    assert sorted(os.listdir(tmp_path)) == [".b.pth.x1y2.tmp", "a.pth"]


def test_model_args_real_bool_and_aliases():
    p = add_common_args(add_model_args(argparse.ArgumentParser()))
    a = p.parse_args(["--hidden_size", "64", "--num_hidden_layers", "3", "--use_moe", "False"])
    assert (a.dim, a.n_layers, a.use_moe) == (64, 3, False)
    assert p.parse_args(["--use_moe", "1"]).use_moe is True
    assert p.parse_args(["--use_moe", "true"]).use_moe is True
    assert p.parse_args(["--dim", "32"]).dim == 32
    with pytest.raises(argparse.ArgumentTypeError):
        str2bool("maybe")
    assert resolve_dtype(None, "cpu") == torch.float32
    with pytest.raises(UserError):
        resolve_dtype("float16", "cpu")


def test_run_main_one_line_exit_2(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(textwrap.dedent(f"""
        import sys; sys.path.insert(0, {ROOT!r})
        import argparse
        from trainer.errors import run_main, UserError
        from trainer.args import add_model_args, ArgumentParser
        def main():
            a = add_model_args(ArgumentParser(prog="prog.py")).parse_args()
            raise UserError("x.jsonl:3: expected JSON,\\n got junk; fix the line")
        run_main(main)
    """))
    r = subprocess.run([sys.executable, str(prog)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["error: x.jsonl:3: expected JSON, got junk; fix the line"]
    r = subprocess.run([sys.executable, str(prog), "--use_moe", "maybe"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--use_moe: expected a boolean" in lines[0], lines


# ----------------------------------------------------------------------------------------------
# Shared by the tests/test_train_*.py files: a tokenizer and small generated JSONL files.

def tokenizer_dir():
    for d in (os.path.join(ROOT, "model"), os.path.join(ROOT, "..", "shared", "minimind_tokenizer")):
        if os.path.exists(os.path.join(d, "tokenizer.json")):
            return os.path.abspath(d)
    pytest.skip("no tokenizer (model/tokenizer.json or ../shared/minimind_tokenizer)")


WORDS = ("the cat sat on a mat and the dog ran to the big red house while a small blue car "
         "went past 今天 天气 很好 我们 去 公园 散步 小猫 在 睡觉").split()


def write_data(d, n_pretrain=120, n_sft=60, n_dpo=48, seed=0):
    """pretrain.jsonl / sft.jsonl / dpo.jsonl in MiniMind's formats, deterministic."""
    import json
    import random
    rng = random.Random(seed)
    os.makedirs(d, exist_ok=True)

    def sent(lo, hi):
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))
    paths = {k: os.path.join(d, f"{k}.jsonl") for k in ("pretrain", "sft", "dpo")}
    with open(paths["pretrain"], "w", encoding="utf-8") as f:
        for _ in range(n_pretrain):
            f.write(json.dumps({"text": sent(5, 40)}, ensure_ascii=False) + "\n")
    with open(paths["sft"], "w", encoding="utf-8") as f:
        for _ in range(n_sft):
            q = sent(2, 12)
            f.write(json.dumps({"conversations": [{"role": "user", "content": q},
                                                  {"role": "assistant", "content": "ok: " + q}]},
                               ensure_ascii=False) + "\n")
    with open(paths["dpo"], "w", encoding="utf-8") as f:
        for _ in range(n_dpo):
            q = sent(2, 10)
            user = {"role": "user", "content": q}
            f.write(json.dumps({"chosen": [user, {"role": "assistant", "content": "sure, " + q}],
                                "rejected": [user, {"role": "assistant", "content": "no no no " + sent(2, 6)}]},
                               ensure_ascii=False) + "\n")
    return paths
