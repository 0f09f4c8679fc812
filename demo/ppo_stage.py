"""The demo's PPO stage (--rl): the reason model learns from the same reward as GRPO's, by the real
train_ppo.py, scored the same way beside GRPO's figures.

    train_ppo.py --data_path rlaif.jsonl --reward_funcs format,gt --from_weight reason -> {out_dir}/ppo_actor_{dim}.pth

GRPO samples 8 answers per question and judges each against its group; PPO samples one and judges it
against a learned critic (a value head on a copy of the trunk), so per step it sees an eighth of the
samples. Its figures are GRPO's (demo/grpo_stage.py): greedy accuracy on every held-out 2-hop question
(in wordings PPO never saw too), pass@4, the well-formed tags and the mean completion length, before
(the reason model) and after.

The second PPO stage, `run_with_reward_model`, is classic RLHF on the chat model, closing the loop without a
download: the reward model train_reward.py learnt from the preference pairs (demo/reward_stage.py) scores
the answers, on the pairs' questions.

    train_ppo.py --data_path rlaif_chat.jsonl --reasoning 0 --from_weight full_sft
                 --reward_model_path {out_dir}/reward_{dim}.pth --save_weight ppo_chat -> {out_dir}/ppo_chat_{dim}.pth

Reported on the 56 held-out questions (facts only pretraining states; neither PPO nor the reward model saw
them asked): the reward model's mean score of the SFT model's greedy answers and of the PPO model's, the win
rate of PPO's answers over SFT's as the reward model judges them (a higher score wins, an equal one ties:
half a win), and the same win rate by the demo's keyword check (right beats wrong), with each model's count
of right answers.
"""
import os
import sys

from demo.common import ROOT, rel, say, thinking_flags
from demo.grpo_stage import TEMPERATURE, before_after, check_files, rl_figures
from demo.scoring import REASON_MAX_NEW_TOKENS, ask_all
from demo.stages import run_stage

# Each rollout is the 20 prompts once (batch 4 x 5 loader batches), 2 passes in minibatches of 4: 10
# optimizer steps per rollout. The settings tried are in the README's PPO section.
ROLLOUT_BATCH, ROLLOUT_ACCUMULATION, MINI_BATCH = 4, 5, 4
# PPO with the reward model: 2 epochs of the 178 questions (9 rollouts of 20, 18 optimizer steps), answers of
# up to 32 tokens, train_ppo.py's kl_coef 0.02. Settings measured by hand are in README's PPO section.
RM_EPOCHS, RM_LR, RM_CRITIC_LR, RM_MAX_GEN = 2, 2e-4, 3e-3, 32


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
            "--log_interval", "1", "--save_interval", "1000000", "--num_workers", "0", "--seed", str(args.seed)] \
        + thinking_flags(args, True)


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


# ----------------------------------------------------------------------------------------------
# PPO with the learnt reward model, on the chat model

def rm_command(args):
    return [sys.executable, os.path.join(ROOT, "train_ppo.py"),
            "--data_path", os.path.join(args.data_dir, "rlaif_chat.jsonl"), "--out_dir", args.out_dir,
            "--tokenizer_path", os.path.join(ROOT, "model"), "--device", args.device, "--dtype", "float32",
            "--dim", str(args.dim), "--n_layers", str(args.n_layers), "--max_seq_len", str(args.max_seq_len),
            "--from_weight", "full_sft", "--reasoning", "0", "--save_weight", "ppo_chat",
            "--reward_model_path", os.path.join(args.out_dir, f"reward_{args.dim}.pth"),
            "--max_gen_len", str(RM_MAX_GEN), "--temperature", str(TEMPERATURE),
            "--epochs", str(args.ppo_chat_epochs), "--batch_size", str(ROLLOUT_BATCH),
            "--accumulation_steps", str(ROLLOUT_ACCUMULATION), "--mini_batch_size", str(MINI_BATCH),
            "--learning_rate", str(RM_LR), "--critic_learning_rate", str(RM_CRITIC_LR),
            "--log_interval", "1", "--save_interval", "1000000", "--num_workers", "0", "--seed", str(args.seed)] \
        + thinking_flags(args, False)


def win_rate(before, after):
    """Wins of `after` over `before`, row by row (a tie is half a win), as a share."""
    return sum(1.0 if b > a else 0.5 if b == a else 0.0 for a, b in zip(before, after)) / max(len(before), 1)


def run_with_reward_model(args, env, items, sft_answers, index_label="rl"):
    """Train PPO on the chat model against the reward model, then judge its held-out answers against the SFT
    model's, by the reward model and by the keyword check; returns (figures, the log's records)."""
    import torch
    from demo.common import DemoError
    from trainer.errors import UserError
    from trainer.rl.rewards import RewardModel
    stage = ("ppo_chat", "train_ppo.py", "ppo_chat", "PPO with the reward model")
    recs, took = run_stage(args, stage, 1, env, cmd=rm_command(args), log_name="ppo_chat",
                           header=f"\n[{index_label}] PPO with the reward model: the chat model (full_sft) answers the "
                                  "preference pairs' questions, the reward model (reward_{dim}.pth) scores them"
                                  .replace("{dim}", str(args.dim)))
    say(f"\n[{index_label}] the PPO chat model ({rel(os.path.join(args.out_dir, f'ppo_chat_{args.dim}.pth'))}) on the "
        "held-out questions:")
    after = ask_all(args, 1, items, weight="ppo_chat")
    torch.set_num_threads(args.threads)
    try:
        rm = RewardModel(os.path.join(args.out_dir, f"reward_{args.dim}.pth"), args.device, os.path.join(ROOT, "model"))
    except UserError as e:
        raise DemoError(str(e))

    def scores(answers):  # raw scores: the ±3 clip would tie two large ones
        return [rm.score([{"role": "user", "content": it["question"]}], a["answer"], clip=False)
                for it, a in zip(items, answers)]
    s_before, s_after = [round(x, 4) for x in scores(sft_answers)], [round(x, 4) for x in scores(after)]
    n = len(items)
    rm_reward = [r for r in recs if "rewards/reward_model/mean" in r]
    k = min(5, max(1, len(rm_reward) // 4))
    out = {"heldout_rm_score": {"before": round(sum(s_before) / n, 4), "after": round(sum(s_after) / n, 4)},
           "win_rate_reward_model": round(win_rate(s_before, s_after), 4),
           "win_rate_keyword": round(win_rate([a["right"] for a in sft_answers], [a["right"] for a in after]), 4),
           "right": {"before": sum(a["right"] for a in sft_answers), "after": sum(a["right"] for a in after),
                     "total": n},
           "identical_answers": sum(a["answer"] == b["answer"] for a, b in zip(sft_answers, after)),
           "train_reward_model_score": {
               "first": round(sum(r["rewards/reward_model/mean"] for r in rm_reward[:k]) / k, 3) if rm_reward else None,
               "last": round(sum(r["rewards/reward_model/mean"] for r in rm_reward[-k:]) / k, 3) if rm_reward else None},
           "sft_scores": s_before,
           "after": [{"question": a["question"], "answer": a["answer"], "right": a["right"], "score": x}
                     for a, x in zip(after, s_after)],
           "time_s": round(took, 1), "steps": len(recs)}
    say("")
    for line in rm_summary(out):
        say("  " + line)
    return out, recs


def rm_summary(r):
    s, right = r["heldout_rm_score"], r["right"]
    return [f"PPO with the reward model: held-out reward-model score {s['before']:.2f} -> {s['after']:.2f} (SFT model -> "
            f"PPO chat model); PPO's answers win {100 * r['win_rate_reward_model']:.0f}% against SFT's by the reward "
            f"model, {100 * r['win_rate_keyword']:.0f}% by the keyword check (right {right['before']}/{right['total']} "
            f"-> {right['after']}/{right['total']}; {r['identical_answers']} answers unchanged)"]
