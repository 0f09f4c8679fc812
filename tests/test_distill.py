"""train_distillation.py: the chunked distillation loss, the stage, the script, DDP, resume, user errors."""
import contextlib
import io
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_distillation  # noqa: E402
import train_full_sft  # noqa: E402
from model import MiniMindConfig, MiniMindForCausalLM  # noqa: E402
from test_train_common import sigkill_after_first_save, tokenizer_dir  # noqa: E402
from test_train_scripts import logged, user_error  # noqa: E402
from trainer.checkpoint import save_weights  # noqa: E402
from trainer.errors import run_main  # noqa: E402
from trainer.stages.distill import DistillStage, Teacher, plain_distill_loss  # noqa: E402
from trainer.fused_loss import fused_distill_loss  # noqa: E402

DEMO_SFT = os.path.join(ROOT, "dataset", "demo", "sft.jsonl")


def mm(dim, layers, seed=0, vocab=6400, scale=1.0):
    torch.manual_seed(seed)
    m = MiniMindForCausalLM(MiniMindConfig(hidden_size=dim, num_hidden_layers=layers, vocab_size=vocab))
    with torch.no_grad():
        m.lm_head.weight.mul_(scale)  # peaked distributions: a KL worth comparing
    return m


def common(out, *extra):
    return ["--dim", "32", "--n_layers", "1", "--max_seq_len", "48", "--num_workers", "0", "--tokenizer_path",
            tokenizer_dir(), "--out_dir", str(out), "--batch_size", "8", "--log_interval", "1", "--device", "cpu",
            *extra]


def args(out, *extra):
    """train_distillation.py's flags: student 32 x 1, teacher 64 x 1, tiny batches."""
    return common(out, "--teacher_dim", "64", "--teacher_n_layers", "1", *extra)


# ---------------------------------------------------------------------------------------------
# The loss: chunked == plain (values and gradients), == a hand computation through the stage

def case(seed=0, B=3, T=11, Ds=16, Dt=24, V=37, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    hs = torch.randn(B, T, Ds, generator=g, dtype=dtype).requires_grad_()
    ws = (torch.randn(V, Ds, generator=g, dtype=dtype) * 0.7).requires_grad_()
    ht = torch.randn(B, T, Dt, generator=g, dtype=dtype)
    wt = torch.randn(V, Dt, generator=g, dtype=dtype) * 0.7
    y = torch.randint(0, V, (B, T), generator=g)
    m = (torch.rand(B, T, generator=g) < 0.6).long()
    return hs, ws, ht, wt, y, m


@pytest.mark.parametrize("alpha,temperature", [(0.0, 1.0), (0.5, 1.0), (1.0, 1.0), (0.0, 2.0), (0.3, 0.5)])
@pytest.mark.parametrize("chunk", [4, 10 ** 6])
def test_chunked_equals_plain_float32(alpha, temperature, chunk):
    hs, ws, ht, wt, y, m = case()
    plain, pm = plain_distill_loss(hs @ ws.t(), ht @ wt.t(), y, m, alpha, temperature)
    fused, tok = fused_distill_loss(hs, ws, ht, wt, y, m, alpha, temperature, chunk_size=chunk)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)
    for a, b in zip(torch.autograd.grad(fused * 3, (hs, ws)), torch.autograd.grad(plain * 3, (hs, ws))):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert len(tok["kl"]) == int(m.sum())
    torch.testing.assert_close(tok["kl"].mean(), pm["kl"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(tok["ce"].mean(), pm["ce"], rtol=1e-5, atol=1e-6)
    assert tok["agree"].float().mean().item() == pytest.approx(pm["agreement"].item())


@pytest.mark.parametrize("alpha,temperature", [(0.0, 1.0), (0.5, 2.0)])
def test_chunked_equals_plain_bf16_autocast(alpha, temperature):
    hs, ws, ht, wt, y, m = case(seed=3, V=40)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain, _ = plain_distill_loss(torch.nn.functional.linear(hs, ws), torch.nn.functional.linear(ht, wt), y, m,
                                      alpha, temperature)
        fused, _ = fused_distill_loss(hs, ws, ht, wt, y, m, alpha, temperature, chunk_size=5)
    assert fused.dtype == torch.float32
    torch.testing.assert_close(fused, plain, rtol=2e-2, atol=2e-2)
    gf, gp = torch.autograd.grad(fused, (hs, ws)), torch.autograd.grad(plain, (hs, ws))
    assert gf[1].dtype == torch.float32
    for a, b in zip(gf, gp):
        torch.testing.assert_close(a, b, rtol=5e-2, atol=5e-3)


def test_gradcheck_float64_and_no_targets():
    hs, ws, ht, wt, y, m = case(B=2, T=4, Ds=3, Dt=5, V=6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda h, w: fused_distill_loss(h, w, ht, wt, y, m, 0.4, 1.7, 3)[0], (hs, ws),
                                    fast_mode=True)
    loss, tok = fused_distill_loss(hs, ws, ht, wt, y, torch.zeros_like(m), 0.5, 2.0)
    assert loss.item() == 0.0 and len(tok["kl"]) == 0
    assert not any(g.any() for g in torch.autograd.grad(loss, (hs, ws)))
    with pytest.raises(ValueError, match="vocabulary"):
        fused_distill_loss(hs, ws, ht, wt[:-1], y, m)


@pytest.mark.parametrize("alpha,temperature", [(0.0, 1.0), (0.5, 1.0), (1.0, 1.0), (0.5, 2.0)])
def test_stage_loss_equals_hand_computation(alpha, temperature):
    """DistillStage on real models == the formula written out in float64 from both models' full logits."""
    student, teacher = mm(32, 1, seed=1, scale=8.0), mm(64, 2, seed=2, scale=20.0)
    stage = DistillStage(Teacher(teacher, "t", {}), alpha, temperature, chunk_size=7)
    g = torch.Generator().manual_seed(0)
    X = torch.randint(3, 6400, (2, 12), generator=g)
    Y = torch.randint(3, 6400, (2, 12), generator=g)
    M = (torch.rand(2, 12, generator=g) < 0.7).long()
    loss, metrics = stage.loss(student, (X, Y, M))

    T = temperature
    with torch.no_grad():
        zs = student(X).logits.double()[M == 1]
        zt = teacher(X).logits.double()[M == 1]
    log_ps = zs / T - torch.logsumexp(zs / T, -1, keepdim=True)
    log_pt = zt / T - torch.logsumexp(zt / T, -1, keepdim=True)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1)                           # KL(teacher || student) per token
    ce = torch.logsumexp(zs, -1) - zs.gather(1, Y[M == 1][:, None]).squeeze(1)  # -log p_student(target)
    want = alpha * ce.mean() + (1 - alpha) * T * T * kl.mean()
    assert kl.mean() > 0.05  # distributions far apart: the comparison means something
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    assert metrics["kl"].double().mean().item() == pytest.approx(kl.mean().item(), rel=1e-4)
    assert metrics["ce"].double().mean().item() == pytest.approx(ce.mean().item(), rel=1e-5)
    agree = (zs.argmax(-1) == zt.argmax(-1)).double().mean()
    assert metrics["agreement"].mean().item() == pytest.approx(agree.item())

    # the teacher is frozen and in eval mode; only the student gets gradients
    loss.backward()
    assert not teacher.training and all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())


def test_transformers_teacher_equals_minimind_teacher():
    """A plain LlamaForCausalLM with the same weights teaches exactly like the MiniMind .pth teacher."""
    from transformers import LlamaConfig, LlamaForCausalLM
    teacher = mm(64, 2, seed=2, scale=20.0)
    c = teacher.config
    llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads, max_position_embeddings=c.max_position_embeddings,
        rms_norm_eps=c.rms_norm_eps, rope_theta=c.rope_theta, tie_word_embeddings=True, hidden_act="silu"))
    llama.load_state_dict(teacher.state_dict(), strict=True)
    X = torch.randint(3, 6400, (2, 10), generator=torch.Generator().manual_seed(4))
    a, b = Teacher(teacher, "pth", {}), Teacher(llama, "dir", {})
    assert a._skip_logits and not b._skip_logits  # MiniMind's skip_logits path, transformers' base-model path
    torch.testing.assert_close(b.hidden(X), a.hidden(X), rtol=1e-4, atol=1e-4)
    student = mm(32, 1, seed=1)
    batch = (X, X.roll(-1, 1), torch.ones_like(X))
    la, _ = DistillStage(a).loss(student, batch)
    lb, _ = DistillStage(b).loss(student, batch)
    assert la.item() == pytest.approx(lb.item(), rel=1e-4)


# ---------------------------------------------------------------------------------------------
# The script on the demo data

@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """In-process runs on one thread: fast on a shared machine, and the same sums as the children's."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def small_sft(tmp_path_factory):
    """The demo's SFT data: its first 160 conversations to train on, its last 48 to validate on."""
    d = tmp_path_factory.mktemp("demo")
    with open(DEMO_SFT, encoding="utf-8") as f:
        lines = f.readlines()
    (d / "sft.jsonl").write_text("".join(lines[:160]), encoding="utf-8")
    (d / "val.jsonl").write_text("".join(lines[-48:]), encoding="utf-8")
    (d / "tiny.jsonl").write_text("".join(lines[:24]), encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory, small_sft):
    """out/ with a teacher trained on the demo SFT data (64 x 1, loss ~3) and an untrained student (32 x 1)."""
    out = tmp_path_factory.mktemp("out")
    with contextlib.redirect_stdout(io.StringIO()):
        train_full_sft.main(common(out, "--data_path", str(small_sft / "sft.jsonl"), "--from_weight", "none",
                                   "--dim", "64", "--batch_size", "16", "--epochs", "8", "--learning_rate", "5e-3",
                                   "--log_interval", "100"))
    save_weights(mm(32, 1, seed=5), str(out / "full_sft_32.pth"))
    return out


class FakeWandb:
    """What the trainer calls of wandb, recorded (the real offline wandb is tested in tests/test_train_dpo.py)."""

    def __init__(self):
        self.runs = []

    def init(self, **kw):
        run = type("Run", (), {})()
        run.kw, run.rows = kw, []
        run.log = lambda row, step=None, commit=None: run.rows.append(dict(row, _step=step))
        run.finish = lambda exit_code=0: None
        self.runs.append(run)
        return run

    def teardown(self):
        pass


def test_kl_falls_agreement_rises_on_demo_data_and_wandb(ckpts, small_sft, tmp_path, capsys, monkeypatch):
    wandb = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(ckpts / "full_sft_64.pth", out)
    argv = args(out, "--data_path", str(small_sft / "sft.jsonl"), "--from_weight", "none", "--batch_size", "16",
                "--epochs", "4", "--learning_rate", "1e-2", "--log_interval", "4",
                "--val_data_path", str(small_sft / "val.jsonl"), "--eval_interval", "8")
    train_distillation.main(argv + ["--use_wandb", "--wandb_project", "kd"])
    o = capsys.readouterr().out
    assert "teacher params: " in o and f"loaded {out / 'full_sft_64.pth'}" in o
    kl, agree = logged(o, "kl"), logged(o, "agreement")
    steps = sorted(kl)
    assert steps == [1] + list(range(4, 41, 4))  # the first step too: a short run shows where it started
    steps = steps[1:]
    # (measured on the training batches: kl 3.39 -> 0.62; agreement 0.10 over the first three logged
    # steps -> 0.22 over the last three. One batch is too noisy a start: the first alone read 0.17.)
    assert sum(kl[s] for s in steps[-3:]) / 3 < 0.3 * kl[steps[0]], kl
    assert sum(agree[s] for s in steps[-3:]) / 3 > sum(agree[s] for s in steps[:3]) / 3 + 0.1, agree
    vkl, vagree = logged(o, "val/kl"), logged(o, "val/agreement")
    assert sorted(vkl) == [8, 16, 24, 32, 40]
    assert vkl[40] < 0.5 * vkl[8] and vagree[40] > vagree[8], (vkl, vagree)
    assert (out / "full_dist_32.pth").exists()
    (run,) = wandb.runs
    assert run.kw["project"] == "kd" and "Dist-SFT" in run.kw["name"] and run.kw["config"]["alpha"] == 0.0
    by_step = {r["_step"]: r for r in run.rows}
    for k in ("loss", "kl", "ce", "agreement", "lr", "grad_norm", "tokens_per_sec"):
        assert sorted(s for s, r in by_step.items() if k in r) == [1] + steps, k
    for k in ("val/loss", "val/kl", "val/ce", "val/agreement"):
        assert sorted(s for s, r in by_step.items() if k in r) == sorted(vkl), k
    assert by_step[40]["agreement"] == pytest.approx(agree[40], abs=1e-4)
    assert by_step[40]["val/kl"] == pytest.approx(vkl[40], abs=1e-4)

    # scripts/demo.py --distill scores students the same way (scripts/demo_distill.py): the distilled
    # student is far closer to the teacher than the untrained one it started as
    import argparse
    sys.path.insert(0, ROOT)
    from demo import distill_stage as demo_distill
    shutil.copy(ckpts / "full_sft_32.pth", out)
    a = argparse.Namespace(out_dir=str(out), dim=64, n_layers=1, threads=1, max_seq_len=48)
    s = argparse.Namespace(out_dir=str(out), dim=32)
    agree = demo_distill.teacher_agreement(a, s, {"val": str(small_sft / "val.jsonl")})
    # (the .pth is float16, the run's own validation saw float32 weights)
    assert agree["full_dist"]["val"]["agreement"] == pytest.approx(vagree[40], abs=0.02)
    assert agree["full_dist"]["val"]["kl"] == pytest.approx(vkl[40], rel=0.05)
    # (measured: KL 3.84 -> 0.56, agreement 0.23 -> 0.26 on 466 answer tokens; a teacher this weak and an
    # untrained student often pick the same common token, so the KL is the clear sign)
    assert agree["full_dist"]["val"]["kl"] < 0.3 * agree["full_sft"]["val"]["kl"], agree
    assert agree["full_dist"]["val"]["agreement"] > agree["full_sft"]["val"]["agreement"], agree

    # resuming with another alpha is refused in one line, naming the flag (after the data summaries)
    with pytest.raises(SystemExit) as e:
        run_main(train_distillation.main, argv + ["--alpha", "0.5", "--from_resume", "1"])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert e.value.code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "full_dist_32_resume.pth" in lines[0] and "--alpha 0.0 (now 0.5)" in lines[0]


def test_defaults_are_minimind2s():
    a = train_distillation.parse_args([])
    assert (a.epochs, a.batch_size, a.learning_rate, a.alpha, a.temperature) == (6, 32, 5e-6, 0.0, 1.0)
    assert (a.dim, a.n_layers, a.teacher_dim, a.teacher_n_layers) == (512, 8, 768, 16)
    assert (a.from_weight, a.teacher_weight, a.save_weight, a.max_seq_len) == ("full_sft", "full_sft", "full_dist", 512)
    assert a.teacher_model_path is None and a.teacher_use_moe is False


def test_transformers_folder_teacher(ckpts, small_sft, tmp_path, capsys):
    """--teacher_model_path: a MiniMind folder with its tokenizer teaches; the student starts from full_sft."""
    from transformers import AutoTokenizer
    from trainer.checkpoint import load_weights
    t = load_weights(MiniMindForCausalLM(MiniMindConfig(hidden_size=64, num_hidden_layers=1)),
                     str(ckpts / "full_sft_64.pth"))
    t.save_pretrained(tmp_path / "teacher")
    AutoTokenizer.from_pretrained(tokenizer_dir()).save_pretrained(tmp_path / "teacher")
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(ckpts / "full_sft_32.pth", out)
    train_distillation.main(args(out, "--data_path", str(small_sft / "tiny.jsonl"), "--epochs", "1",
                                 "--teacher_model_path", str(tmp_path / "teacher"), "--alpha", "0.5",
                                 "--temperature", "2"))
    o = capsys.readouterr().out
    assert f"loaded {out / 'full_sft_32.pth'}" in o and f"loaded {tmp_path / 'teacher'}" in o
    assert len(logged(o, "kl")) == 3 and (out / "full_dist_32.pth").exists()


def test_user_errors_one_line_exit_2(ckpts, small_sft, tmp_path, capsys):
    from transformers import AutoTokenizer
    data = ["--data_path", str(small_sft / "tiny.jsonl")]
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(ckpts / "full_sft_32.pth", out)
    # missing teacher checkpoint: the file, the script that writes it, the teacher flags
    line = user_error(train_distillation, args(out, *data), capsys)
    assert str(out / "full_sft_64.pth") in line and "train_full_sft.py" in line and "--teacher_dim" in line
    line = user_error(train_distillation, args(out, *data, "--teacher_weight", "none"), capsys)
    assert "--teacher_weight none" in line
    shutil.copy(ckpts / "full_sft_64.pth", out)
    # teacher dims that do not match its checkpoint (a .pth path given as is)
    line = user_error(train_distillation, args(out, *data, "--teacher_n_layers", "3", "--teacher_weight",
                                               str(out / "full_sft_64.pth")), capsys)
    assert "--teacher_dim 64 --teacher_n_layers 1" in line and "--teacher_n_layers 3" in line
    # missing student / student dims that do not match
    line = user_error(train_distillation, args(out, *data, "--from_weight", "nope"), capsys)
    assert str(out / "nope_32.pth") in line
    line = user_error(train_distillation, args(out, *data, "--n_layers", "2"), capsys)
    assert "--dim 32 --n_layers 1" in line and "--n_layers 2" in line
    # a teacher with another vocabulary: refused, not cut
    save_weights(mm(64, 1, vocab=7000), str(out / "big_64.pth"))
    line = user_error(train_distillation, args(out, *data, "--teacher_weight", "big"), capsys)
    assert "7000" in line and "6400" in line and "tokenizer" in line
    mm(64, 1, vocab=7000).save_pretrained(tmp_path / "bigdir")
    line = user_error(train_distillation, args(out, *data, "--teacher_model_path", str(tmp_path / "bigdir")), capsys)
    assert "7000" in line and str(tmp_path / "bigdir") in line
    # a teacher folder whose tokenizer differs from the student's
    mm(64, 1).save_pretrained(tmp_path / "tokdir")
    tok = AutoTokenizer.from_pretrained(tokenizer_dir())
    tok.add_tokens(["<|extra|>"])
    tok.save_pretrained(tmp_path / "tokdir")
    line = user_error(train_distillation, args(out, *data, "--teacher_model_path", str(tmp_path / "tokdir")), capsys)
    assert "tokenizer differs" in line and "6401" in line
    line = user_error(train_distillation, args(out, *data, "--teacher_model_path", str(tmp_path / "nodir")), capsys)
    assert "config.json" in line
    for bad in (["--alpha", "1.5"], ["--temperature", "0"], ["--teacher_use_moe", "maybe"], ["--teacher_dim", "-1"]):
        assert bad[0] in user_error(train_distillation, args(out, *data, *bad), capsys)


# ---------------------------------------------------------------------------------------------
# Real processes: torchrun with 2 processes, SIGKILL then --from_resume 1

def script(out, data, *extra):
    return [os.path.join(ROOT, "train_distillation.py"), *args(out, "--data_path", data, *extra)]


def test_torchrun_two_processes(ckpts, small_sft, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for f in ("full_sft_32.pth", "full_sft_64.pth"):
        shutil.copy(ckpts / f, out)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        *script(out, str(small_sft / "tiny.jsonl"), "--batch_size", "4", "--epochs", "1",
                                "--learning_rate", "1e-3", "--val_data_path", str(small_sft / "val.jsonl"))],
                       capture_output=True, text=True, timeout=600, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    o = r.stdout
    assert o.count("teacher params") == 1 and "2 process(es)" in o
    assert "3 batches of 4 per process per epoch, 3 optimizer steps" in o  # 24 samples (a few cut) / 2 ranks / 4
    assert sorted(logged(o, "agreement")) == [1, 2, 3] and "val/agreement" in o
    resume = torch.load(out / "full_dist_32_resume.pth", weights_only=True)
    assert len(resume["rng"]) == 2 and resume["config"]["world_size"] == 2
    assert not any(k.startswith("module.") for k in resume["model"])  # the student alone, unwrapped


def test_sigkill_then_resume_gives_identical_losses(ckpts, small_sft, tmp_path, capsys):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    data = str(small_sft / "tiny.jsonl")
    common = ("--batch_size", "1", "--epochs", "1", "--learning_rate", "2e-3", "--alpha", "0.3",
              "--temperature", "1.5", "--save_interval", "4")
    outs = {}
    for k in "ab":
        outs[k] = tmp_path / k
        outs[k].mkdir()
        for f in ("full_sft_32.pth", "full_sft_64.pth"):
            shutil.copy(ckpts / f, outs[k])
    # the uninterrupted run in this process (one thread, like the children: the same float sums)
    train_distillation.main(script(outs["a"], data, *common)[1:])
    ref = capsys.readouterr().out
    full = logged(ref)
    total = int(re.search(r"^(\d+) samples, 1 process", ref, re.M).group(1))  # batch 1: a step per sample
    assert total >= 16 and sorted(full) == list(range(1, total + 1))

    sigkill_after_first_save([sys.executable, "-u", *script(outs["b"], data, *common)], env=env)
    r = subprocess.run([sys.executable, "-u", *script(outs["b"], data, *common, "--from_resume", "1")],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    start = int(re.search(r"resumed from epoch \d+ step (\d+)", r.stdout).group(1))
    assert 4 <= start < total and start % 4 == 0
    resumed = logged(r.stdout)
    assert sorted(resumed) == list(range(start + 1, total + 1))
    assert resumed == {s: full[s] for s in resumed}
    for key in ("kl", "ce", "agreement", "grad_norm"):
        assert logged(r.stdout, key) == {s: v for s, v in logged(ref, key).items() if s > start}
    wa = torch.load(outs["a"] / "full_dist_32.pth", weights_only=True)
    wb = torch.load(outs["b"] / "full_dist_32.pth", weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
