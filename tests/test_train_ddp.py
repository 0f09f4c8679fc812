"""`torchrun --nproc_per_node 2` on CPU (gloo): DPO with sharded reference pass, DDP steps, validation."""
import os
import subprocess
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_train_common import tokenizer_dir, write_data  # noqa: E402
from test_train_scripts import logged  # noqa: E402


def test_torchrun_two_processes_dpo(tmp_path):
    data = write_data(str(tmp_path / "data"), n_pretrain=1, n_sft=1, n_dpo=21)["dpo"]
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         os.path.join(ROOT, "train_dpo.py"), "--device", "cpu",
         "--dim", "32", "--n_layers", "1", "--max_seq_len", "64", "--batch_size", "4", "--epochs", "2",
         "--from_weight", "none", "--learning_rate", "1e-3", "--log_interval", "1", "--save_interval", "2",
         "--num_workers", "0", "--val_data_path", data, "--eval_interval", "3",
         "--tokenizer_path", tokenizer_dir(), "--data_path", data, "--out_dir", str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stdout + r.stderr
    o = r.stdout
    assert o.count("LLM total params") == 1  # only rank 0 talks
    assert "2 process(es)" in o
    # 21 pairs over 2 ranks -> 11 per rank (one repeated, like DistributedSampler) -> 3 batches of 4
    assert "3 batches of 4 per process per epoch, 6 optimizer steps" in o
    losses = logged(o)
    assert sorted(losses) == [1, 2, 3, 4, 5, 6]
    assert "val/loss" in o and "val/rewards/accuracies" in o
    sd = torch.load(out / "rlhf_32.pth", weights_only=True)
    assert "model.layers.0.self_attn.o_proj.weight" in sd
    resume = torch.load(out / "rlhf_32_resume.pth", weights_only=True)
    assert len(resume["rng"]) == 2 and resume["config"]["world_size"] == 2
    assert resume["stage"]["ref"].shape == (21, 2)
