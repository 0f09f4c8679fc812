"""MiniMind's 2025-10 README commands, as its users type them, run here (issue 27).

Its README says `cd trainer` and then `python train_pretrain.py` ...; here the scripts are at the repo
root, so the commands are the same without the `cd`. They run in order in a sandbox copy of the repo,
on stand-ins of its data files (the demo corpus, under MiniMind's default file names), each with flags
appended that make the model tiny (the README's words stay as they are, like tests/test_readme_commands.py).
Each step asserts what the command must have written or printed.

One difference shows: its `train_lora.py` starts from `full_sft` where ours keeps MiniMind2's `rlhf`, so
its README's `python train_lora.py` (before DPO) stops here with the one-line error that names
train_dpo.py; the test checks that line and runs the LoRA steps again after `train_dpo.py`.

Left out: `train_distillation.py` (its default teacher is a 768x16 model trained in another tutorial
step), `train_spo.py` (not built yet: issue 25), and the deepspeed launcher.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fork_server import ForkServer  # noqa: E402
from readme_session import TRAIN_SMALL, copy_repo  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIMS = ["--hidden_size", "64", "--num_hidden_layers", "1"]  # MiniMind 2025-10's names for --dim, --n_layers
_i = TRAIN_SMALL.index("--n_layers")
TRAIN = TRAIN_SMALL[:_i] + TRAIN_SMALL[_i + 2:] + DIMS + ["--save_interval", "2"]
CHAT = DIMS + ["--device", "cpu", "--max_new_tokens", "6"]

# MiniMind 2025-10's default data file names -> (demo file, lines kept)
STAND_INS = {"pretrain_hq.jsonl": ("pretrain.jsonl", 24), "sft_mini_512.jsonl": ("sft.jsonl", 16),
             "lora_identity.jsonl": ("lora_identity.jsonl", 16), "lora_medical.jsonl": ("lora_domain.jsonl", 16),
             "dpo.jsonl": ("dpo.jsonl", 8), "r1_mix_1024.jsonl": ("reason.jsonl", 16),
             "rlaif-mini.jsonl": ("rlaif.jsonl", 4)}

# (its README's command, what our run must show). In its README's order; the lora_medical adapter
# that its `eval_llm.py --lora_weight lora_medical` line loads is trained the way its text says
# (`./dataset/lora_xxx.jsonl`, `--lora_name`).
COMMANDS = [
    ("python train_pretrain.py", ["pretrain_64.pth"]),
    ("python train_pretrain.py --from_resume 1", []),  # the run above finished: it says so and stops
    ("python train_full_sft.py", ["full_sft_64.pth"]),
    ("python train_full_sft.py --from_resume 1", []),
    ("python eval_llm.py --weight full_sft", []),
    ("torchrun --nproc_per_node 1 train_pretrain.py", ["pretrain_64.pth"]),
    ("python train_lora.py", 2),  # ours reads rlhf_64.pth (MiniMind2's default), not there yet
    ("python train_dpo.py", ["rlhf_64.pth"]),
    ("python train_lora.py", ["lora/lora_identity_64.pth"]),
    ("python train_lora.py --lora_name lora_medical --data_path ./dataset/lora_medical.jsonl",
     ["lora/lora_medical_64.pth"]),
    ("python eval_llm.py --weight dpo --lora_weight lora_medical", []),
    ("python train_reason.py", ["reason_64.pth"]),
    ("python train_grpo.py", ["grpo_64.pth"]),
    ("python train_ppo.py", ["ppo_actor_64.pth"]),
    ("python eval_llm.py --weight ppo_actor", []),
    ("python eval_llm.py --weight grpo", []),
    ("python eval_llm.py --weight full_sft --inference_rope_scaling", []),
]
SMALL = {"train_grpo.py": ["--max_gen_len", "8", "--num_generations", "2", "--batch_size", "2"],
         "train_ppo.py": ["--max_gen_len", "8", "--batch_size", "2"]}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    base = tmp_path_factory.mktemp("mm2510")
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
    if words[0] == "torchrun":  # one process: the script itself, as torchrun would run it alone
        words = ["python"] + [w for w in words[1:] if not w.startswith("--nproc_per_node") and w != "1"]
    script = words[1]
    extra = CHAT if script == "eval_llm.py" else TRAIN + SMALL.get(script, [])
    return [script] + words[2:] + extra


def test_minimind_2510_readme_commands_run_in_order(sandbox):
    repo, fork = sandbox
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(WANDB_MODE="disabled", PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    stdin = os.path.join(repo, "stdin.txt")
    with open(stdin, "w", encoding="utf-8") as f:
        f.write("1\nWhat is the capital of Tarnis?\n")  # eval_llm.py: [1] manual input, one question
    for i, (command, outputs) in enumerate(COMMANDS):
        if outputs == 2:  # a one-line user error, nothing else
            log = os.path.join(repo, f"step{i:02d}.log")
            rc = fork.wait(fork.start(_argv(command), repo, env, stdin, log), 600)
            with open(log, encoding="utf-8", errors="replace") as f:
                err = [ln for ln in f.read().splitlines() if ln.startswith("error: ")]
            assert rc == 2 and len(err) == 1 and "train_dpo.py" in err[0], (command, rc, err)
            continue
        before = {p: os.path.getmtime(os.path.join(repo, "out", p)) for p in outputs
                  if os.path.exists(os.path.join(repo, "out", p))}
        log = os.path.join(repo, f"step{i:02d}.log")
        rc = fork.wait(fork.start(_argv(command), repo, env, stdin, log), 600)
        with open(log, encoding="utf-8", errors="replace") as f:
            out = f.read()
        assert rc == 0, f"{command}: exit {rc}\n{out[-3000:]}"
        assert "Traceback" not in out, f"{command}\n{out[-3000:]}"
        for p in outputs:  # written by this very command
            path = os.path.join(repo, "out", p)
            assert os.path.exists(path) and os.path.getmtime(path) != before.get(p), f"{command}: did not write out/{p}"
        if command.startswith("python eval_llm.py"):
            assert "🤖" in out, f"{command}: no answer printed\n{out[-2000:]}"
        if "--from_resume 1" in command:
            assert "resume file is from a finished run" in out, f"{command}: did not find its resume file\n{out[-2000:]}"
        if "--inference_rope_scaling" in command:
            assert "YaRN rope scaling: factor" in out, f"{command}: YaRN not reported\n{out[-2000:]}"
