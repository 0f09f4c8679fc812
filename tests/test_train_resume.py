"""SIGKILL a real training process after a save, resume it, and get the uninterrupted run's losses."""
import os
import re
import signal
import subprocess
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_train_common import tokenizer_dir, write_data  # noqa: E402
from test_train_scripts import logged  # noqa: E402


def cmd(out_dir, data_path, *extra):
    # many tiny steps: the kill lands wherever the process happens to be, long before the end
    return [sys.executable, "-u", os.path.join(ROOT, "train_pretrain.py"),
            "--dim", "32", "--n_layers", "1", "--max_seq_len", "16", "--batch_size", "1",
            "--accumulation_steps", "2", "--epochs", "2", "--learning_rate", "3e-3", "--warmup_iters", "3",
            "--log_interval", "1", "--save_interval", "5", "--num_workers", "0",
            "--tokenizer_path", tokenizer_dir(), "--data_path", data_path, "--out_dir", str(out_dir), *extra]


def test_sigkill_then_resume_gives_identical_losses(tmp_path):
    data = write_data(str(tmp_path / "data"), n_pretrain=40, n_sft=1, n_dpo=1)["pretrain"]
    env = dict(os.environ, PYTHONPATH=ROOT)

    # uninterrupted reference run
    a = subprocess.run(cmd(tmp_path / "a", data), capture_output=True, text=True, env=env, timeout=600)
    assert a.returncode == 0, a.stderr
    full = logged(a.stdout)
    total = max(full)
    assert total >= 60 and sorted(full) == list(range(1, total + 1))

    # same run, SIGKILLed at the first step line read after its first save
    p = subprocess.Popen(cmd(tmp_path / "b", data), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, env=env)
    seen, saved = [], False
    for line in p.stdout:
        seen.append(line)
        saved = saved or line.startswith("saved ")
        if saved and line.startswith("epoch "):
            os.kill(p.pid, signal.SIGKILL)
            break
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL, "".join(seen[-5:])
    for f in os.listdir(tmp_path / "b"):
        if f.endswith(".pth"):
            torch.load(tmp_path / "b" / f, weights_only=True)  # never a truncated checkpoint

    r = subprocess.run(cmd(tmp_path / "b", data, "--from_resume", "1"), capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    m = re.search(r"resumed from epoch (\d+) step (\d+)", r.stdout)
    assert m, r.stdout[:2000]
    start = int(m.group(2))
    assert start >= 5 and start % 5 == 0 and start < total
    resumed = logged(r.stdout)
    assert sorted(resumed) == list(range(start + 1, total + 1))
    assert resumed == {s: full[s] for s in resumed}  # identical losses, printed to 6 decimals
    assert logged(r.stdout, "grad_norm") == {s: v for s, v in logged(a.stdout, "grad_norm").items() if s > start}

    wa = torch.load(tmp_path / "a" / "pretrain_32.pth", weights_only=True)
    wb = torch.load(tmp_path / "b" / "pretrain_32.pth", weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
