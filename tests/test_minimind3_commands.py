"""MiniMind-3's README commands, as its users type them, run here on the MiniMind-3 family (issue 28).

Its README says `cd trainer` and then `python train_pretrain.py` ...; here the scripts are at the repo root,
and the family is chosen once for the shell (`export MINIMIND_MODEL_FAMILY=minimind3`, README's MiniMind-3
block), so the commands are the same without the `cd`. Its scripts' defaults follow (768 x 8, its data file
names, lengths, `--save_weight dpo`, RL from `full_sft`). They run in order in a sandbox copy of the repo, on
stand-ins of its data files (the demo corpus, under MiniMind-3's file names), each with flags appended that
make the model tiny. Each step asserts what the command must have written or printed, and that the
checkpoints are MiniMind-3's (q/k norms).
"""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fork_server import ForkServer  # noqa: E402
from readme_session import TRAIN_SMALL, copy_repo  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIMS = ["--hidden_size", "64", "--num_hidden_layers", "1"]
_i = TRAIN_SMALL.index("--n_layers")
TRAIN = TRAIN_SMALL[:_i] + TRAIN_SMALL[_i + 2:] + DIMS + ["--save_interval", "2"]
CHAT = DIMS + ["--device", "cpu", "--max_new_tokens", "6"]

# MiniMind-3's default data file names -> (demo file, lines kept)
STAND_INS = {"pretrain_t2t_mini.jsonl": ("pretrain.jsonl", 24), "sft_t2t_mini.jsonl": ("sft.jsonl", 16),
             "dpo.jsonl": ("dpo.jsonl", 8), "lora_identity.jsonl": ("lora_identity.jsonl", 16),
             "rlaif.jsonl": ("rlaif.jsonl", 4), "agent_rl.jsonl": ("agent_rl.jsonl", 2)}

# (its README's command, what our run must write), in its README's order
COMMANDS = [
    ("python train_pretrain.py", ["pretrain_64.pth"]),
    ("python train_full_sft.py", ["full_sft_64.pth"]),
    ("python eval_llm.py --weight full_sft", []),
    ("python train_dpo.py", ["dpo_64.pth"]),
    ("python train_lora.py", ["lora/lora_identity_64.pth"]),
    ("python eval_llm.py --weight full_sft --lora_weight lora_identity", []),
    ("python train_ppo.py", ["ppo_actor_64.pth"]),
    ("python train_grpo.py", ["grpo_64.pth"]),
    ("python train_agent.py", ["agent_64.pth"]),
    ("python eval_llm.py --weight grpo", []),
]
SMALL = {"train_grpo.py": ["--max_gen_len", "8", "--num_generations", "2", "--batch_size", "2"],
         "train_ppo.py": ["--max_gen_len", "8", "--batch_size", "2"],
         "train_agent.py": ["--max_gen_len", "8", "--num_generations", "2", "--batch_size", "2", "--max_turns", "2",
                            "--max_total_len", "600"]}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    base = tmp_path_factory.mktemp("mm3")
    repo = os.path.join(base, "repo")
    copy_repo(repo)
    for name, (src, n) in STAND_INS.items():
        with open(os.path.join(ROOT, "dataset", "demo", src), encoding="utf-8") as f:
            lines = f.readlines()[:n]
        with open(os.path.join(repo, "dataset", name), "w", encoding="utf-8") as f:
            f.writelines(lines)
    fork = ForkServer(repo)
    yield repo, fork
    fork.close()


def _argv(command):
    words = command.split()
    script = words[1]
    extra = CHAT if script == "eval_llm.py" else TRAIN + SMALL.get(script, [])
    return [script] + words[2:] + extra


def test_minimind3_readme_commands_run_in_order(sandbox):
    repo, fork = sandbox
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(WANDB_MODE="disabled", PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false",
               MINIMIND_MODEL_FAMILY="minimind3")
    stdin = os.path.join(repo, "stdin.txt")
    with open(stdin, "w", encoding="utf-8") as f:
        f.write("1\nWhat is the capital of Tarnis?\n")  # eval_llm.py: [1] manual input, one question
    for i, (command, outputs) in enumerate(COMMANDS):
        log = os.path.join(repo, f"step{i:02d}.log")
        rc = fork.wait(fork.start(_argv(command), repo, env, stdin, log), 600)
        with open(log, encoding="utf-8", errors="replace") as f:
            out = f.read()
        assert rc == 0, f"{command}: exit {rc}\n{out[-3000:]}"
        assert "Traceback" not in out, f"{command}\n{out[-3000:]}"
        for p in outputs:
            path = os.path.join(repo, "out", p)
            assert os.path.exists(path), f"{command}: did not write out/{p}"
            if not p.startswith("lora/"):
                state = torch.load(path, map_location="cpu", weights_only=True)
                assert "model.layers.0.self_attn.q_norm.weight" in state, f"out/{p} is not a MiniMind-3 checkpoint"
        if command.startswith("python eval_llm.py"):
            assert "🤖" in out, f"{command}: no answer printed\n{out[-2000:]}"


def test_the_readme_block_is_these_commands():
    """README's MiniMind-3 block (a text fence: tests/test_readme_commands.py runs the bash ones in one session,
    which these need a shell variable apart from) is the export and exactly the commands run above."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    block = readme.split("**MiniMind-3's own commands.**", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    lines = block.strip().splitlines()
    assert lines[0] == "export MINIMIND_MODEL_FAMILY=minimind3"
    assert lines[1:] == [c for c, _ in COMMANDS]
