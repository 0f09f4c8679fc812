"""DPO: cached reference log-probs, preference learning on the demo data, wandb metrics, resume."""
import json
import math
import os
import struct
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_dpo  # noqa: E402
from test_train_common import tokenizer_dir, write_data  # noqa: E402
from test_train_scripts import logged, tiny  # noqa: E402

DEMO_DPO = os.path.join(ROOT, "dataset", "demo", "dpo.jsonl")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(str(tmp_path_factory.mktemp("data")), n_pretrain=4, n_sft=4, n_dpo=24)


def test_cached_reference_equals_on_the_fly(data):
    from dataset.lm_dataset import DPODataset, dpo_collate
    from model import MiniMindConfig, MiniMindForCausalLM
    from trainer.stages.dpo import DPOStage, compute_reference_logps, policy_logps
    from trainer.losses import dpo_loss
    from contextlib import nullcontext
    torch.manual_seed(0)
    model = MiniMindForCausalLM(MiniMindConfig(hidden_size=32, num_hidden_layers=1))
    ds = DPODataset(data["dpo"], tokenizer_dir(), max_length=48)
    collate = dpo_collate(0)
    ref = compute_reference_logps(model, ds, collate, torch.device("cpu"), 5, nullcontext, log=lambda m: None)
    assert ref.shape == (len(ds), 2)
    frozen = MiniMindForCausalLM(model.config)
    frozen.load_state_dict(model.state_dict())
    frozen.eval()
    with torch.no_grad():
        for i in range(0, len(ds), 3):  # one pair at a time, no padding at all
            pc, pr, _ = policy_logps(frozen, collate([ds[i]]))
            assert ref[i].tolist() == pytest.approx([pc.item(), pr.item()], abs=1e-3)
    # a training step's loss with the cache == with a live reference model
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    stage = DPOStage(beta=0.1)
    stage.ref = ref
    batch = collate([ds[i] for i in (3, 0, 7, 5)])
    loss, metrics = stage.loss(model, batch)
    with torch.no_grad():
        rc, rr, _ = policy_logps(frozen, batch)
    pc, pr, _ = policy_logps(model, batch)
    want, _ = dpo_loss(pc, pr, rc, rr, 0.1)
    assert loss.item() == pytest.approx(want.mean().item(), abs=1e-5)
    assert abs(loss.item() - math.log(2)) > 1e-4  # the perturbation moved it off ln 2


def read_wandb_history(wandb_dir):
    """History rows and run records from each offline run's .wandb log (LevelDB-style framing), in the
    order the runs logged: by their smallest logged step. The folders' names (start second + run id)
    tie or sort either way for two quick runs that share a resumed id."""
    from wandb.proto import wandb_internal_pb2 as pb
    runs = []
    for root, _, files in os.walk(wandb_dir):
        for f in files:
            if f.endswith(".wandb"):
                runs.append(os.path.join(root, f))
    out = []
    for path in sorted(runs):
        data = open(path, "rb").read()
        pos, payload, rows = 7, b"", []
        meta = {"id": os.path.basename(path)[len("run-"):-len(".wandb")]}
        while pos + 7 <= len(data):
            left = 32768 - pos % 32768
            if left < 7:
                pos += left
                continue
            _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
            pos += 7
            payload += data[pos:pos + n]
            pos += n
            if kind in (1, 4):  # FULL or LAST fragment
                r = pb.Record()
                r.ParseFromString(payload)
                payload = b""
                which = r.WhichOneof("record_type")
                if which == "history":
                    rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item})
                elif which == "run":
                    meta = {**meta, "id": r.run.run_id, "name": r.run.display_name, "project": r.run.project,
                            "config": {u.key: json.loads(u.value_json) for u in r.run.config.update}}
        out.append((meta, rows))
    return sorted(out, key=lambda run: min((r["_step"] for r in run[1] if "_step" in r), default=-1))


def test_dpo_learns_demo_preferences_and_logs_to_wandb(tmp_path, capsys, monkeypatch):
    path = DEMO_DPO if os.path.exists(DEMO_DPO) else write_data(str(tmp_path / "d"), n_dpo=150)["dpo"]
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    out = tmp_path / "out"
    argv = tiny(out, "--data_path", path, "--from_weight", "none", "--epochs", "2", "--learning_rate", "2e-3",
                "--max_seq_len", "80",
                "--batch_size", "16", "--log_interval", "2", "--use_wandb", "--wandb_project", "t")
    train_dpo.main(argv)
    o = capsys.readouterr().out
    acc = logged(o, "rewards/accuracies")
    margins = logged(o, "rewards/margins")
    last = sorted(acc)[-3:]
    assert sum(acc[s] for s in last) / 3 > 0.8, acc  # chance is 0.5
    assert margins[last[-1]] > 0.2  # it starts at 0: policy == reference
    (meta, rows), = read_wandb_history(tmp_path / "wandb")
    assert meta["project"] == "t" and "DPO" in meta["name"] and meta["config"]["beta"] == 0.1
    keys = set().union(*rows)
    for k in ("loss", "lr", "grad_norm", "tokens_per_sec", "rewards/chosen", "rewards/rejected",
              "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"):
        assert k in keys, k
    by_step = {r["_step"]: r for r in rows if "rewards/accuracies" in r}
    assert by_step[last[-1]]["rewards/accuracies"] == pytest.approx(acc[last[-1]], abs=1e-4)


class Crash(Exception):
    pass


def test_dpo_resume_restores_reference_and_continues_exactly(tmp_path, data, capsys, monkeypatch):
    import trainer.stages.dpo
    import trainer.loop
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    for k, v in dict(WANDB_MODE="offline", WANDB_DIR=str(tmp_path), WANDB_SILENT="true", WANDB_CONSOLE="off").items():
        monkeypatch.setenv(k, v)
    common = ["--data_path", data["dpo"], "--from_weight", "none", "--epochs", "2", "--batch_size", "4",
              "--learning_rate", "1e-3", "--save_interval", "3"]
    train_dpo.main(tiny(out_a, *common))
    full = logged(capsys.readouterr().out)

    real_save = trainer.loop.Trainer.save

    def save_then_crash(self, *a, **k):
        real_save(self, *a, **k)
        if a[-1] == 3:  # step
            raise Crash()
    monkeypatch.setattr(trainer.loop.Trainer, "save", save_then_crash)
    with pytest.raises(Crash):
        train_dpo.main(tiny(out_b, *common, "--use_wandb"))
    capsys.readouterr()
    monkeypatch.setattr(trainer.loop.Trainer, "save", real_save)

    def no_reference_pass(*a, **k):
        raise AssertionError("resumed run must take the reference log-probs from the resume file")
    monkeypatch.setattr(trainer.stages.dpo, "compute_reference_logps", no_reference_pass)
    train_dpo.main(tiny(out_b, *common, "--from_resume", "1", "--use_wandb"))
    o = capsys.readouterr().out
    assert "resumed from epoch 1 step 3" in o
    resumed = logged(o)
    assert min(resumed) == 4 and max(resumed) == max(full)
    assert resumed == {s: full[s] for s in resumed}
    a = torch.load(out_a / "rlhf_32.pth", weights_only=True)
    b = torch.load(out_b / "rlhf_32.pth", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the resumed run continues the interrupted run's wandb run
    (m1, rows1), (m2, rows2) = read_wandb_history(tmp_path / "wandb")
    assert m1["id"] == m2["id"]
    assert {r["_step"] for r in rows1 if "loss" in r} == {1, 2, 3}
    assert {r["_step"] for r in rows2 if "loss" in r} == set(range(4, max(full) + 1))
