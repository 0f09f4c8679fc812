"""train_distillation.py on the MiniMind-3 family: a MiniMind-3 teacher teaches a MiniMind-3 student (the family
reaches the teacher's config too), the KL falls, the student is written as a MiniMind-3 checkpoint."""
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import train_distillation  # noqa: E402
from model import MiniMindConfig, MiniMindForCausalLM  # noqa: E402
from test_train_common import tokenizer_dir  # noqa: E402
from test_train_scripts import logged  # noqa: E402
from trainer.checkpoint import save_weights  # noqa: E402


def test_distillation_on_the_minimind3_family(tmp_path, capsys):
    with open(os.path.join(ROOT, "dataset", "demo", "sft.jsonl"), encoding="utf-8") as f:
        (tmp_path / "sft.jsonl").write_text("".join(f.readlines()[:96]), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    torch.manual_seed(2)
    teacher = MiniMindForCausalLM(MiniMindConfig(hidden_size=64, num_hidden_layers=1, model_family="minimind3"))
    with torch.no_grad():
        teacher.lm_head.weight.mul_(20.0)  # peaked distributions: a KL worth learning
    save_weights(teacher, str(out / "full_sft_64.pth"))
    train_distillation.main(["--model_family", "minimind3", "--dim", "32", "--n_layers", "1", "--teacher_dim", "64",
                             "--teacher_n_layers", "1", "--max_seq_len", "48", "--num_workers", "0",
                             "--tokenizer_path", tokenizer_dir(), "--out_dir", str(out), "--device", "cpu",
                             "--data_path", str(tmp_path / "sft.jsonl"), "--from_weight", "none", "--batch_size", "16",
                             "--epochs", "4", "--learning_rate", "1e-2", "--log_interval", "4"])
    kl = logged(capsys.readouterr().out, "kl")
    steps = sorted(kl)
    assert kl[steps[-1]] < 0.5 * kl[steps[0]], kl
    state = torch.load(out / "full_dist_32.pth", weights_only=True)
    assert "model.layers.0.self_attn.q_norm.weight" in state
