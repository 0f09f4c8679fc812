"""GRPO: reinforcement learning from rewards (also CISPO, Dr. GRPO and DAPO: --loss_type).

    python train_grpo.py
    torchrun --nproc_per_node 2 train_grpo.py --n_layers 16 --dim 768 --use_wandb
reads {out_dir}/reason_{dim}[_moe].pth (--reasoning 1, the default; full_sft with --reasoning 0) and writes
{out_dir}/grpo_{dim}[_moe].pth. The data is MiniMind's rlaif-mini.jsonl: {"conversations": [user turn,
empty assistant turn]}, plus any fields the rewards read ("gt": [strings the answer must contain]).
Each step samples --num_generations completions of each prompt, scores them (trainer/rl/rewards.py),
and updates the policy towards the better ones of each group (trainer/stages/grpo.py).
"""
from trainer.args import make_parser
from trainer.errors import run_main
from trainer.loop import Trainer
from trainer.rl.online import (add_policy_loss_flags, add_reward_flags, add_rollout_flags, at_least_two, finish_args,
                               prompt_sets)

# Default learning rate. MiniMind's 8e-8 (3e-7 in 2026) suited its loss, whose ratio exp(logp - logp.detach())
# made every step one plain policy-gradient step on doubly normalised advantages over 1536-token rollouts.
# Measured on the demo (trainer/../demo, 2-hop questions, gt reward, 64-dim model), held-out greedy 2-hop
# accuracy after 40 steps: see README "RLAIF: GRPO"; 1e-6 (TRL's GRPO default) is the rate that works
# for a full-size model, and the demo raises it for its tiny one.
DEFAULT_LR = 1e-6


def parse_args(argv=None):
    p = make_parser("MiniMind GRPO", stage="grpo", epochs=1, batch_size=2, learning_rate=DEFAULT_LR,
                    accumulation_steps=1, max_seq_len=66, data_path="./dataset/rlaif-mini.jsonl",
                    from_weight=None, save_weight="grpo", wandb_project="MiniMind-GRPO",
                    log_interval=1, save_interval=10,
                    lr_help="peak learning rate (default %(default)s, TRL's; MiniMind's 8e-8 suited its loss, "
                            "see train_grpo.py)")
    p._option_string_actions["--max_seq_len"].help = "prompt tokens kept (its last ones; default %(default)s)"
    p._option_string_actions["--from_weight"].help = ("start from {out_dir}/{from_weight}_{dim}[_moe].pth (default: "
                                                      "reason with --reasoning 1, full_sft with --reasoning 0)")
    p._option_string_actions["--val_data_path"].help = ("held-out prompts in the same format: greedy answers scored by "
                                                        "the same rewards, val/reward")
    p._option_string_actions["--batch_size"].help = "prompts per micro-batch per process (default %(default)s)"
    g = p.add_argument_group("GRPO")
    g.add_argument("--num_generations", type=at_least_two, default=8,
                   help="completions sampled per prompt, compared within their group (default %(default)s)")
    add_policy_loss_flags(g)
    g.add_argument("--scale_rewards", choices=("group", "batch", "none"), default="group",
                   help="divide advantages by the group's reward std, the batch's, or not at all (Dr. GRPO) "
                        "(default %(default)s)")
    add_rollout_flags(g)
    add_reward_flags(g)
    return finish_args(p.parse_args(argv))


def main(argv=None):
    args = parse_args(argv)
    from dataset.lm_dataset import prompt_collate
    from trainer.stages.grpo import GRPOStage
    with Trainer(args) as trainer:
        funcs, train_ds, val_ds = prompt_sets(trainer, args)
        model = trainer.build_model()
        trainer.fit(model, train_ds, prompt_collate, GRPOStage(args, funcs, args.reward_weights), val_ds)


if __name__ == "__main__":
    run_main(main)
