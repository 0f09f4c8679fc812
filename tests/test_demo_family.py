"""scripts/demo.py --model_family minimind3: every stage's command runs the MiniMind-3 family with exactly the
settings the MiniMind2 demo uses (the family's script defaults, e.g. DPO's --save_weight dpo or SFT's
random system prompts, must not change what the demo trains), and the in-process scorers build that family."""
import copy
import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from demo import grpo_stage, lora_stage, ppo_stage, reward_stage  # noqa: E402
from demo import run as demo_run  # noqa: E402
from demo.common import family_flags, thinking_on  # noqa: E402
from demo.stages import STAGES, stage_command  # noqa: E402


def demo_args(*flags):
    return demo_run.resolve(demo_run.get_parser().parse_args(["--rl", *flags]))


def commands(args):
    """(script, argv) of every training command the demo runs, the family flag as run_stage inserts it."""
    out = [stage_command(args, s) for s in STAGES]
    out += [grpo_stage.command(args), ppo_stage.command(args), ppo_stage.rm_command(args), reward_stage.command(args)]
    out += [lora_stage.command(args, name) for name in ("identity", "domain")]
    return [(os.path.basename(c[1]), family_flags(args) + c[2:]) for c in out]


def parse(script, argv, monkeypatch):
    monkeypatch.delenv("MINIMIND_MODEL_FAMILY", raising=False)
    spec = importlib.util.spec_from_file_location(script[:-3], os.path.join(ROOT, script))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return vars(mod.parse_args(argv))


def test_defaults_and_out_dir(monkeypatch):
    monkeypatch.delenv("MINIMIND_MODEL_FAMILY", raising=False)
    a2, a3 = demo_args(), demo_args("--model_family", "minimind3")
    assert (a2.model_family, a2.out_dir, family_flags(a2), thinking_on(a2)) == ("minimind2", "out/demo", [], None)
    assert (a3.model_family, a3.out_dir, thinking_on(a3)) == ("minimind3", "out/demo_minimind3", True)
    assert family_flags(a3) == ["--model_family", "minimind3"]
    monkeypatch.setenv("MINIMIND_MODEL_FAMILY", "minimind3")
    assert demo_args().model_family == "minimind3"
    assert demo_args("--model_family", "minimind2", "--out_dir", "x").out_dir == "x"


def test_minimind3_commands_keep_the_demo_settings(monkeypatch):
    """Each script parses the MiniMind-3 demo's command into the MiniMind2 demo's settings, but for the
    family and the RL prompts' thinking switch (on for the reason model, off for the chat model)."""
    a2, a3 = demo_args("--out_dir", "o"), demo_args("--model_family", "minimind3", "--out_dir", "o")
    c2, c3 = commands(a2), commands(a3)
    assert [s for s, _ in c2] == [s for s, _ in c3] and len(c2) == 10
    for (script, argv2), (_, argv3) in zip(c2, c3):
        assert "--model_family" not in argv2
        v2, v3 = parse(script, argv2, monkeypatch), parse(script, argv3, monkeypatch)
        assert v3.pop("model_family") == "minimind3" and v2.pop("model_family") == "minimind2"
        if script == "train_full_sft.py":  # MiniMind-3's SFT processing off: 1.0 keeps every empty block, as None
            assert (v2["empty_think_ratio"], v3["empty_think_ratio"], v3["add_system_ratio"]) == (None, 1.0, 0.0)
            v3["empty_think_ratio"] = None
        ratio = v3.pop("thinking_ratio", None)
        if "thinking_ratio" in v2:
            assert v2.pop("thinking_ratio") is None
            assert ratio == (0.0 if "ppo_chat" in argv3 else 1.0), script
        assert v2 == v3, (script, {k: (v2[k], v3.get(k)) for k in v2 if v2[k] != v3.get(k)})


def test_scorers_build_the_family(tmp_path):
    """The demo's in-process loaders (scoring.ask_all, grpo_stage.sampled, reward_stage) read a MiniMind-3
    checkpoint as one: model_size carries the family, and a MiniMind2 size refuses it in one line."""
    import torch
    from model import MiniMindConfig, MiniMindForCausalLM
    from model.loading import load_pth, model_size
    from trainer.errors import UserError
    path = tmp_path / "full_sft_64.pth"
    net = MiniMindForCausalLM(MiniMindConfig(hidden_size=64, num_hidden_layers=1, model_family="minimind3"))
    torch.save(net.state_dict(), path)
    back = load_pth(str(path), model_size(64, 1, model_family="minimind3"))
    assert back.config.model_family == "minimind3"
    x = torch.tensor([[1, 5, 9]])
    assert torch.equal(back(x).logits, net.eval()(x).logits)
    with pytest.raises(UserError, match="minimind3"):
        load_pth(str(path), model_size(64, 1))


def test_reward_pth_keeps_its_family(tmp_path):
    """A MiniMind-3 reward_*.pth loads by its tensors alone (GRPO/PPO --reward_model_path, the demo's scoring)."""
    import torch
    from model import MiniMindForSequenceClassification
    from model.reward import load_reward_pth, reward_config
    size = copy.copy(demo_args())
    size.dim, size.n_layers, size.use_moe, size.model_family = 64, 1, False, "minimind3"
    net = MiniMindForSequenceClassification(reward_config(size))
    path = tmp_path / "reward_64.pth"
    torch.save(net.state_dict(), path)
    back = load_reward_pth(str(path))
    assert back.config.model_family == "minimind3"
    x = torch.tensor([[1, 5, 9]])
    assert torch.allclose(back(x).logits, net.eval()(x).logits)
