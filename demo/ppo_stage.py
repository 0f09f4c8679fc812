"""The demo's PPO stage (--rl): the reason model learns from the same reward as GRPO's, by the real
train_ppo.py, scored the same way beside GRPO's figures.

    train_ppo.py --data_path rlaif.jsonl --reward_funcs format,gt --from_weight reason -> {out_dir}/ppo_actor_{dim}.pth

GRPO samples 8 answers per question and judges each against its group; PPO samples one and judges it
against a learned critic (a value head on a copy of the trunk), so per step it sees an eighth of the
samples. Its figures are GRPO's (demo/grpo_stage.py): greedy accuracy on every held-out 2-hop question
(in wordings PPO never saw too), pass@4, the well-formed tags and the mean completion length, before
(the reason model) and after.
"""
import os
import sys

from demo.common import ROOT, rel, say
from demo.grpo_stage import TEMPERATURE, before_after, check_files, rl_figures
from demo.scoring import REASON_MAX_NEW_TOKENS, ask_all
from demo.stages import run_stage

# Each rollout is the 20 prompts once (batch 4 x 5 loader batches), 2 passes in minibatches of 4: 10
# optimizer steps per rollout. The settings tried are in the README's PPO section.
ROLLOUT_BATCH, ROLLOUT_ACCUMULATION, MINI_BATCH = 4, 5, 4


def command(args):
    return [sys.executable, os.path.join(ROOT, "train_ppo.py"),
            "--data_path", os.path.join(args.data_dir, "rlaif.jsonl"), "--out_dir", args.out_dir,
            "--tokenizer_path", os.path.join(ROOT, "model"), "--device", args.device, "--dtype", "float32",
            "--dim", str(args.dim), "--n_layers", str(args.n_layers), "--max_seq_len", str(args.max_seq_len),
            "--from_weight", "reason", "--reasoning", "1", "--reward_funcs", "format,gt",
            "--max_gen_len", str(REASON_MAX_NEW_TOKENS), "--temperature", str(TEMPERATURE),
            "--epochs", str(args.ppo_epochs), "--batch_size", str(ROLLOUT_BATCH),
            "--accumulation_steps", str(ROLLOUT_ACCUMULATION), "--mini_batch_size", str(MINI_BATCH),
            "--learning_rate", str(args.ppo_lr), "--critic_learning_rate", str(args.ppo_critic_lr),
            "--log_interval", "1", "--save_interval", "1000000", "--num_workers", "0", "--seed", str(args.seed)]


def run(args, env, items, reason_answers, index_label="rl"):
    """Train, then score the PPO actor beside the reason model; returns (figures, the log's records)."""
    check_files(args)
    stage = ("ppo", "train_ppo.py", "ppo_actor", "PPO on the reason model")
    recs, took = run_stage(args, stage, 1, env, cmd=command(args), log_name="ppo",
                           header=f"\n[{index_label}] PPO on the reason model: the same prompts and reward as GRPO, "
                                  "one answer per question, judged against a critic")
    weight = "ppo_actor"
    say(f"\n[{index_label}] the PPO actor ({rel(os.path.join(args.out_dir, f'{weight}_{args.dim}.pth'))}) on the "
        "2-hop held-out questions, thinking first:")
    after = ask_all(args, 3, items, max_new_tokens=REASON_MAX_NEW_TOKENS, weight=weight)
    out = rl_figures(args, items, reason_answers, weight, after, recs, took)
    out["explained_variance_last"] = next((r["explained_variance"] for r in reversed(recs)
                                           if "explained_variance" in r), None)
    say("")
    for line in summary(out):
        say("  " + line)
    return out, recs


def summary(r):
    b, a = r["before"], r["after"]
    pair = before_after(r)
    return [f"PPO: 2-hop held-out greedy accuracy {pair('greedy')} (reason model -> PPO actor; in wordings PPO "
            f"never saw {pair('greedy_unseen_wording')})",
            f"PPO: pass@{b['pass_at_k']['k']} {pair('pass_at_k', 'count')}, well-formed tags "
            f"{pair('well_formed', 'count')}, mean completion length {b['mean_length']} -> {a['mean_length']} tokens",
            f"PPO: training reward (gt) {r['train_reward']['first']:.2f} -> {r['train_reward']['last']:.2f} "
            f"({r['steps']} optimizer steps in {r['time_s'] / 60:.1f} min)"]
