"""Faults during training, injected for real: NaN losses (one rank of two under torchrun too), weights
blown up by a huge learning rate, a full or read-only disk while saving, damaged .pth files for
every script that reads weights, and Ctrl-C. Each asserts the exit code, the one line, and that the
last good checkpoint is byte-identical afterwards.

The trainer runs in-process (run_main as the scripts' __main__ does) where that is enough; SIGINT and
DDP go through real processes.
"""
import argparse
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_full_sft  # noqa: E402
import train_pretrain  # noqa: E402
from test_train_common import tokenizer_dir, write_data  # noqa: E402
from trainer import loop, stages  # noqa: E402
from trainer.checkpoint import read_state_dict, save_weights  # noqa: E402
from trainer.errors import UserError, run_main  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """In-process runs on one thread: on a busy 2-core machine two threads make these tiny steps ~20x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(str(tmp_path_factory.mktemp("data")), n_pretrain=40, n_sft=12, n_dpo=1)


def argv(out, data_path, *extra):
    return ["--dim", "32", "--n_layers", "1", "--max_seq_len", "16", "--batch_size", "8", "--num_workers", "0",
            "--tokenizer_path", tokenizer_dir(), "--out_dir", str(out), "--log_interval", "1",
            "--save_interval", "3", "--learning_rate", "3e-3", "--accumulation_steps", "1",
            "--data_path", data_path, *extra]


def run(script, args, capsys):
    """(exit code, stdout, stderr lines) of `python script.py args`, in-process."""
    code = 0
    try:
        run_main(script.main, args)
    except SystemExit as e:
        code = e.code
    cap = capsys.readouterr()
    # the data set's one-time "tokenized FILE ... -> cache" note is not part of what is checked
    return code, cap.out, [ln for ln in cap.err.splitlines() if ln.strip() and not ln.startswith("tokenized ")]


def files(d):
    """{name: bytes} of the checkpoints in d; temp files (.*.tmp) would show up too."""
    return {n: (d / n).read_bytes() for n in sorted(os.listdir(d)) if n.endswith((".pth", ".tmp"))}


@pytest.fixture
def nan_at(monkeypatch):
    """nan_at(calls): the stage's loss is NaN on those micro-batch calls (1-based), inside the real loop.
    Returns the list of lm_head weights seen at each call, to check that a skipped step changed nothing."""
    seen, orig = [], stages.LMStage.loss

    def install(calls, stop_from=None, interrupt_at=None):
        seen.clear()

        def loss(self, model, batch):
            n = len(seen) + 1
            seen.append(stages.unwrap(model).lm_head.weight.detach().clone())
            if n == interrupt_at:
                raise KeyboardInterrupt
            value, metrics = orig(self, model, batch)
            if n in calls or (stop_from is not None and n >= stop_from):
                value = value * float("nan")
            return value, metrics
        monkeypatch.setattr(stages.LMStage, "loss", loss)
        return seen
    return install


@pytest.fixture
def snapshots(monkeypatch):
    """{step: {file: bytes}} right after every successful save; `hooks` run around each save."""
    snaps, hooks = {}, {"before": None, "after": None}
    orig = loop.Trainer.save

    def save(self, model, optimizer, scaler, stage, epoch, batch, step, final=False):
        if hooks["before"]:
            hooks["before"](step)
        orig(self, model, optimizer, scaler, stage, epoch, batch, step, final)
        snaps[step] = files(pathlib.Path(self.args.out_dir))
        if hooks["after"]:
            hooks["after"](step)
    monkeypatch.setattr(loop.Trainer, "save", save)
    return snaps, hooks


# ---------------------------------------------------------------------------------------------- NaN

def test_nan_loss_skips_steps_then_stops_with_last_save_intact(tmp_path, data, capsys, nan_at, snapshots):
    out = tmp_path / "out"
    seen = nan_at({5}, stop_from=8)
    snaps, _ = snapshots
    code, o, err = run(train_pretrain, argv(out, data["pretrain"], "--max_bad_steps", "3"), capsys)
    assert code == 2, o[-3000:]
    total = int(re.search(r"(\d+) optimizer steps", o).group(1))
    assert len(err) == 1, err
    assert err[0] == (
        f"error: stopped at step 10/{total}: 3 steps in a row had a non-finite loss or gradient norm (the last: "
        f"non-finite loss (nan) at epoch 1, batch 10 of {total}); the last save (step 9: {out}/pretrain_32.pth, "
        f"{out}/pretrain_32_resume.pth) is intact; try a lower --learning_rate (now 0.003) or checking the data "
        f"around epoch 1, batch 10 of {total}")
    warned = re.findall(r"^warning: step (\d+)/\d+: non-finite loss \(nan\) at epoch 1, batch \1 of \d+; step skipped, "
                        r"weights unchanged \(skipped_steps (\d+); (\d) of --max_bad_steps 3 in a row\)$", o, re.M)
    assert warned == [("5", "1", "1"), ("8", "2", "1"), ("9", "3", "2"), ("10", "4", "3")], o
    # a skipped step leaves the weights as they were, and its NaN gradient is cleared, not carried on
    assert torch.equal(seen[4], seen[5]) and not torch.equal(seen[5], seen[6])
    assert torch.equal(seen[7], seen[8]) and torch.equal(seen[8], seen[9])
    assert re.search(r"^epoch 1/1 step 6/\d+ loss \d+\.\d+ .* skipped_steps 1$", o, re.M), o
    # nothing was saved after the bad streak began except unchanged, finite weights; the files are the last save's
    assert sorted(snaps) == [3, 6, 9]
    assert files(out) == snaps[9]
    resume = torch.load(out / "pretrain_32_resume.pth", weights_only=True)
    assert resume["step"] == 9 and resume["skipped_steps"] == 3
    assert all(torch.isfinite(v).all() for v in read_state_dict(str(out / "pretrain_32.pth")).values())

    # the data is fine again: --from_resume 1 continues from step 9 and keeps counting the skips
    nan_at(set())
    code, o, err = run(train_pretrain, argv(out, data["pretrain"], "--max_bad_steps", "3", "--from_resume", "1"), capsys)
    assert code == 0 and err == [], err
    assert "resumed from epoch 1 step 9" in o
    assert re.search(rf"^epoch 1/1 step {total}/{total} loss \d+\.\d+ .* skipped_steps 3$", o, re.M), o


def test_blown_up_weights_are_never_saved(tmp_path, data, capsys, snapshots):
    """A learning rate of 1e36: step 1 makes the weights huge, float16 cannot hold them, every later loss is
    NaN. The save at step 3 is refused and the good run's files in the same --out_dir stay as they were."""
    out = tmp_path / "out"
    code, o, err = run(train_pretrain, argv(out, data["pretrain"], "--epochs", "1"), capsys)
    assert code == 0, err
    good = files(out)
    code, o, err = run(train_pretrain, argv(out, data["pretrain"], "--learning_rate", "1e36",
                                            "--max_bad_steps", "0"), capsys)
    assert code == 2 and len(err) == 1, err
    assert re.fullmatch(r"error: not saving step 3: the weights are not finite \(model\.\S+ holds inf in the "
                        r"weights file's float16 \(\|w\| up to \S+\)\); nothing was saved yet; try a lower "
                        r"--learning_rate \(now 1e\+36\)", err[0]), err
    assert "warning: step 2/" in o and "warning: step 3/" in o  # NaN from the huge weights: skipped
    assert files(out) == good


def test_float16_scaler_overflow_is_counted_as_a_skip():
    """GradScaler's own skip (float16: the scaled gradients overflow) goes through the same guard: counted,
    warned, the weights untouched, and the scale lowered by scaler.update() without a step."""
    import types
    from trainer.faults import StepGuard
    lin = torch.nn.Linear(4, 1)
    opt = torch.optim.AdamW(lin.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 127)  # CPU scaler: float16 itself needs CUDA
    logs = []
    trainer = types.SimpleNamespace(world_size=1, rank=0, is_main=True, ddp=False, log=logs.append,
                                    dtype=torch.float16, args=types.SimpleNamespace(learning_rate=1e-2),
                                    saved_step=None, saved_paths=None)
    guard, before = StepGuard(trainer, 2), lin.weight.detach().clone()
    for i in range(2):
        loss = lin(torch.full((2, 4), 1e3)).pow(2).mean()
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        gn = torch.nn.utils.clip_grad_norm_(lin.parameters(), 1.0)
        try:
            ok = guard.check(loss.detach(), gn, scaler, i + 1, 10, 0, i, i, 10)
        except UserError as e:
            stop = str(e)
        else:
            assert ok is False
        scaler.update()
        opt.zero_grad()
    assert torch.equal(lin.weight, before) and scaler.get_scale() == 2.0 ** 125 and guard.skipped == 2
    assert logs[0] == ("warning: step 1/10: non-finite gradient norm (inf; float16 loss scale 1.70141e+38 too high, "
                       "GradScaler halves it) at epoch 1, batch 1 of 10; step skipped, weights unchanged "
                       "(skipped_steps 1; 1 of --max_bad_steps 2 in a row)")
    assert stop.startswith("stopped at step 2/10: 2 steps in a row had a non-finite loss or gradient norm")
    assert stop.endswith("nothing was saved yet; try a lower --learning_rate (now 0.01), --dtype float32 or "
                         "checking the data around epoch 1, batch 2 of 10")


# ------------------------------------------------------------------------------------ full disk, r/o

@pytest.fixture
def disk(tmp_path):
    """A 16 MB tmpfs where mounting is allowed (root), else a plain folder (then the quota-like stand-in
    is RLIMIT_FSIZE: a real write error from the kernel, in the real save path)."""
    d = tmp_path / "disk"
    d.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(d)],
                             capture_output=True).returncode == 0 if os.geteuid() == 0 else False
    yield d, mounted
    if mounted:
        subprocess.run(["mount", "-o", "remount,rw", str(d)], capture_output=True)
        subprocess.run(["umount", str(d)], check=True)


def test_full_then_read_only_disk_keeps_last_save_and_resumes(disk, data, capsys, snapshots):
    import resource
    d, mounted = disk
    out = d / "out"
    snaps, hooks = snapshots
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    xfsz = signal.getsignal(signal.SIGXFSZ)

    def fill(step):  # the disk fills up after the first save
        if step != 3:
            return
        if mounted:
            st = os.statvfs(d)
            fd = os.open(d / "filler", os.O_CREAT | os.O_WRONLY)
            os.posix_fallocate(fd, 0, st.f_bavail * st.f_frsize - 32 * 1024)
            os.close(fd)
        else:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, limit[1]))
    hooks["after"] = fill
    try:
        code, o, err = run(train_pretrain, argv(out, data["pretrain"]), capsys)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, xfsz)
    assert code == 2 and len(err) == 1, err
    reason = "No space left on device (errno 28)" if mounted else "File too large (errno 27)"
    assert err[0] == (f"error: {out}/pretrain_32.pth: could not save step 6: {reason}; the last save (step 3: "
                      f"{out}/pretrain_32.pth, {out}/pretrain_32_resume.pth) is intact and no temporary file is "
                      "left; free some space or make --out_dir writable, then rerun with --from_resume 1 to "
                      "continue from step 3")
    assert files(out) == snaps[3]  # byte-identical, and no .tmp left behind
    if mounted:
        os.unlink(d / "filler")

    # space again, but now the directory is read-only (a remount; chmod where we are not root)
    hooks["after"] = None
    if mounted or os.geteuid() != 0:
        def read_only(step):
            if mounted:
                subprocess.run(["mount", "-o", "remount,ro", str(d)], check=True)
            else:
                os.chmod(out, 0o555)
        hooks["before"] = read_only
        try:
            code, o, err = run(train_pretrain, argv(out, data["pretrain"], "--from_resume", "1"), capsys)
        finally:
            if mounted:
                subprocess.run(["mount", "-o", "remount,rw", str(d)], check=True)
            else:
                os.chmod(out, 0o755)
        assert "resumed from epoch 1 step 3" in o
        assert code == 2 and len(err) == 1, err
        assert err[0].startswith(f"error: {out}/pretrain_32.pth: could not save step 6: ")
        assert ("Read-only file system" if mounted else "Permission denied") in err[0]
        assert files(out) == snaps[3]
        hooks["before"] = None

    # writable with space: the run continues from the last good save and finishes
    code, o, err = run(train_pretrain, argv(out, data["pretrain"], "--from_resume", "1"), capsys)
    assert code == 0 and err == [], err
    assert "resumed from epoch 1 step 3" in o and "(step 6)" in o


# ------------------------------------------------------------------------------------- damaged files

def damage(path, kind, good_bytes):
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good_bytes[:len(good_bytes) // 2])
    elif kind == "not torch":
        path.write_bytes(b'{"text": "a JSONL line saved as .pth"}\n')
    elif kind == "needs weights_only=False":
        torch.save({"model": torch.load(path.with_name("good.pth"), weights_only=True),
                    "args": argparse.Namespace(lr=1e-3)}, path)


WHAT = {"empty": "the file is empty (0 bytes)", "truncated": "the file is truncated or damaged",
        "not torch": "not a file written by torch.save (it starts with b'{\"te')",
        "needs weights_only=False": "it holds a Python object (argparse.Namespace) that torch.load reads only "
                                    "with weights_only=False"}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from model import MiniMindConfig, MiniMindForCausalLM
    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    save_weights(MiniMindForCausalLM(MiniMindConfig(hidden_size=32, num_hidden_layers=1)), str(d / "good.pth"))
    return d


@pytest.mark.parametrize("kind", list(WHAT))
def test_damaged_weights_one_line_never_weights_only_false(weights, kind, monkeypatch):
    p = weights / f"{kind.replace(' ', '_').replace('=', '_')}.pth"
    damage(p, kind, (weights / "good.pth").read_bytes())
    calls = []
    real_load = torch.load

    def load(*a, **k):
        calls.append(k.get("weights_only"))
        return real_load(*a, **k)
    monkeypatch.setattr(torch, "load", load)
    with pytest.raises(UserError) as e:
        read_state_dict(str(p), "train_full_sft.py")
    msg = str(e.value)
    assert msg.startswith(f"{p}: not a readable PyTorch checkpoint: {WHAT[kind]}") and "\n" not in msg, msg
    assert msg.endswith("; re-create it with train_full_sft.py or copy it again from a complete original"), msg
    assert calls == [True]


def test_every_script_that_reads_weights_names_the_damaged_file(tmp_path, weights, data, capsys):
    """Training (--from_weight and the resume file), eval_model.py, the server and the converter: one line,
    exit 2, no traceback; the damaged file is left as it was."""
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import convert_model
    from model import chat_cli  # what eval_model.py runs
    import serve_openai_api
    good = (weights / "good.pth").read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    model = ["--dim", "32", "--n_layers", "1", "--tokenizer_path", tokenizer_dir(), "--device", "cpu"]
    cases = [
        (train_full_sft, "pretrain_32.pth", "truncated",
         argv(out, data["sft"], "--from_weight", "pretrain"), "re-create it with train_pretrain.py"),
        (chat_cli, "full_sft_32.pth", "empty", ["--out_dir", str(out), "--mode", "0", *model],
         "re-create it with train_full_sft.py"),
        (serve_openai_api, "rlhf_32.pth", "not torch", ["--out_dir", str(out), "--weight", "rlhf", *model],
         "re-create it with train_dpo.py"),
        (convert_model, "w.pth", "needs weights_only=False",
         ["--weight", str(out / "w.pth"), "--to", "llama", "--output", str(tmp_path / "hf"), *model[:-2]],
         "copy it again"),
    ]
    shutil.copy(weights / "good.pth", out / "good.pth")
    for script, name, kind, args, fix in cases:
        p = out / name
        p.write_bytes(good)
        damage(p, kind, good)
        before = p.read_bytes()
        code, o, err = run(script, args, capsys)
        assert code == 2 and len(err) == 1, (script.__name__, err)
        assert err[0].startswith(f"error: {p}: not a readable PyTorch checkpoint: {WHAT[kind]}"), err
        assert fix in err[0], err
        assert p.read_bytes() == before
    assert not (tmp_path / "hf").exists()

    # a damaged resume file: the same line, with what to do about a resume file
    code, o, err = run(train_pretrain, argv(out, data["pretrain"], "--epochs", "1"), capsys)
    assert code == 0, err
    rpath = out / "pretrain_32_resume.pth"
    damage(rpath, "truncated", rpath.read_bytes())
    code, o, err = run(train_pretrain, argv(out, data["pretrain"], "--from_resume", "1"), capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: {rpath}: not a readable PyTorch checkpoint: the file is truncated or damaged")
    assert err[0].endswith("; delete it, or run without --from_resume 1 to start over")


# -------------------------------------------------------------------------------- messages, Ctrl-C

def test_one_step_run_singular_and_finished_run_resumed(tmp_path, data, capsys):
    out = tmp_path / "out"
    code, o, err = run(train_pretrain, argv(out, data["pretrain"], "--batch_size", "256"), capsys)
    assert code == 0, err
    assert "1 batch of 256 per process per epoch, 1 optimizer step\n" in o
    before = files(out)
    code, o, err = run(train_pretrain, argv(out, data["pretrain"], "--batch_size", "256", "--from_resume", "1"), capsys)
    assert code == 0 and err == []
    assert ("resume file is from a finished run (epoch 1/1, step 1/1); nothing to do; run without "
            "--from_resume 1 to train again") in o
    assert "resumed from" not in o and files(out) == before


def test_ctrl_c_before_the_first_save_says_nothing_was_saved(tmp_path, data, capsys, nan_at):
    nan_at(set(), interrupt_at=2)
    code, o, err = run(train_pretrain, argv(tmp_path / "out", data["pretrain"]), capsys)
    assert code == 130
    total = int(re.search(r"(\d+) optimizer steps", o).group(1))
    assert err == [f"interrupted at step 1/{total}; nothing saved yet (the first save is at step 3, --save_interval 3)"]


def test_sigint_to_a_training_process_one_line_exit_130(tmp_path, data):
    """A real SIGINT to a real run, after its first save: one line, exit code 130, no traceback."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-u", os.path.join(ROOT, "train_pretrain.py"),
           *argv(out, data["pretrain"], "--batch_size", "1", "--epochs", "3", "--save_interval", "5")]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    # the child gets the default SIGINT disposition even if pytest runs with SIGINT ignored (nohup ... &)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    saved, seen = False, []
    for line in p.stdout:
        seen.append(line)
        saved = saved or line.startswith("saved ")
        if saved and line.startswith("epoch "):
            p.send_signal(signal.SIGINT)
            break
    rest, err = p.communicate(timeout=120)
    assert p.returncode == 130, "".join(seen[-5:]) + rest + err
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("tokenized ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    m = re.fullmatch(r"interrupted at step (\d+)/(\d+); weights and resume file saved at step (\d+) "
                     r"\((.+)\); rerun with --from_resume 1 to continue", lines[0])
    assert m, lines
    at, total, step = int(m.group(1)), int(m.group(2)), int(m.group(3))
    assert m.group(4) == str(out / "pretrain_32_resume.pth")
    assert step % 5 == 0 and step <= at < total
    assert torch.load(m.group(4), weights_only=True)["step"] == step
    assert [n for n in os.listdir(out) if n.endswith(".tmp")] == []


# ---------------------------------------------------------------------------------------------- DDP

DRIVER = textwrap.dedent("""
    # train_pretrain.py under torchrun, with the loss of rank NAN_RANK made NaN on some steps and a copy
    # of the checkpoints taken after each save; every rank writes the time it exited.
    import atexit, os, shutil, sys, time
    sys.path.insert(0, os.environ["ROOT"])
    import torch
    torch.set_num_threads(1)
    from trainer import loop, stages
    from trainer.errors import run_main
    import train_pretrain
    rank = int(os.environ["RANK"])
    atexit.register(lambda: open(os.path.join(os.environ["SNAP"], f"exit{rank}"), "w").write(repr(time.time())))
    orig_loss, calls = stages.LMStage.loss, [0]
    def loss(self, model, batch):
        value, metrics = orig_loss(self, model, batch)
        calls[0] += 1
        if rank == int(os.environ["NAN_RANK"]) and (calls[0] == 2 or calls[0] >= 5):
            value = value * float("nan")
        return value, metrics
    stages.LMStage.loss = loss
    orig_save = loop.Trainer.save
    def save(self, *a, **k):
        orig_save(self, *a, **k)
        if self.is_main:
            for p in self.saved_paths:
                shutil.copy(p, os.path.join(os.environ["SNAP"], os.path.basename(p)))
    loop.Trainer.save = save
    run_main(train_pretrain.main, sys.argv[1:])
""")


def test_ddp_nan_on_one_rank_stops_every_rank(tmp_path, data):
    drv, snap, out = tmp_path / "driver.py", tmp_path / "snap", tmp_path / "out"
    drv.write_text(DRIVER)
    snap.mkdir()
    env = dict(os.environ, ROOT=ROOT, SNAP=str(snap), NAN_RANK="1", PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(drv), *argv(out, data["pretrain"], "--device", "cpu", "--batch_size", "4",
                                        "--save_interval", "2", "--max_bad_steps", "2")],
                       capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert r.returncode != 0, r.stdout + r.stderr
    ours = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(ours) == 1, r.stderr
    assert re.fullmatch(rf"error: stopped at step 6/\d+: 2 steps in a row had a non-finite loss or gradient norm "
                        rf"\(the last: non-finite loss \(nan on rank 1\) at epoch 1, batch 6 of \d+\); the last save "
                        rf"\(step 4: {out}/pretrain_32.pth, {out}/pretrain_32_resume.pth\) is intact; try .*", ours[0])
    assert re.search(r"^warning: step 2/\d+: non-finite loss \(nan on rank 1\)", r.stdout, re.M), r.stdout
    assert re.search(r"^epoch 1/1 step 3/\d+ loss \d", r.stdout, re.M)  # one bad step: skipped, then on
    exits = [float((snap / f"exit{k}").read_text()) for k in (0, 1)]  # both ranks exited by themselves
    assert max(exits) - min(exits) < 5 and time.time() - t0 < 240
    for n in ("pretrain_32.pth", "pretrain_32_resume.pth"):
        assert (out / n).read_bytes() == (snap / n).read_bytes()
    assert torch.load(out / "pretrain_32_resume.pth", weights_only=True)["step"] == 4
