"""PPO: actor-critic reinforcement learning from rewards, MiniMind's train_ppo.py as its 2026 code fixed it.

    python train_ppo.py
    torchrun --nproc_per_node 2 train_ppo.py --n_layers 16 --dim 768 --use_wandb
reads {out_dir}/reason_{dim}[_moe].pth (--reasoning 1, the default; full_sft with --reasoning 0) and writes
{out_dir}/ppo_actor_{dim}[_moe].pth (the actor: a chat model like every stage's); the resume file beside it
holds the actor, the critic and their optimizer. The data, prompts, rewards and rollout engine are GRPO's
(train_grpo.py): MiniMind's rlaif-mini.jsonl, one completion per prompt. The actor is the policy; the
critic is a value head on its own copy of the actor's trunk; a frozen copy of the starting actor gives the
KL (none with --kl_coef 0). GAE, whitened advantages, the clipped policy and value losses, the k3 KL
penalty, --ppo_update_iters passes over minibatches and the early stop are trainer/rl/ppo.py and
trainer/stages/ppo.py.

Defaults: the algorithm's are MiniMind's 2026 ones (its learning rates, clip ranges, coefficients, GAE,
update passes, minibatch and early stop); the data's are GRPO's and MiniMind2's (rlaif-mini.jsonl, prompts
cut to their last 66 tokens, 1536 new tokens, temperature 0.8: MiniMind's 2026 768/1024 are for its longer
rlaif.jsonl).
"""
from trainer.args import make_parser, nonneg_float, positive_float, positive_int, unit_float
from trainer.errors import run_main
from trainer.loop import Trainer
from trainer.rl.online import add_reward_flags, add_rollout_flags, finish_args, prompt_sets


def parse_args(argv=None):
    p = make_parser("MiniMind PPO", stage="ppo", epochs=1, batch_size=2, learning_rate=3e-7,
                    accumulation_steps=1, max_seq_len=66, data_path="./dataset/rlaif-mini.jsonl",
                    from_weight=None, save_weight="ppo_actor", wandb_project="MiniMind-PPO",
                    log_interval=1, save_interval=10,
                    lr_help="the actor's peak learning rate (default %(default)s, MiniMind's)")
    p._option_string_actions["--max_seq_len"].help = ("prompt tokens kept (its last ones; default %(default)s, GRPO's "
                                                      "and MiniMind2's; MiniMind's 2026 768 is for its rlaif.jsonl)")
    p._option_string_actions["--data_path"].help = ("RLAIF prompts (default %(default)s, GRPO's and MiniMind2's; "
                                                    "MiniMind's 2026 code reads its larger rlaif.jsonl)")
    p._option_string_actions["--from_weight"].help = ("start from {out_dir}/{from_weight}_{dim}[_moe].pth, actor and "
                                                      "critic's trunk alike (default: reason with --reasoning 1, "
                                                      "full_sft with --reasoning 0)")
    p._option_string_actions["--val_data_path"].help = ("held-out prompts in the same format: greedy answers scored by "
                                                        "the same rewards, val/reward")
    p._option_string_actions["--batch_size"].help = ("prompts per loader batch per process, and rows per forward "
                                                     "of the update (default %(default)s)")
    p._option_string_actions["--accumulation_steps"].help = ("loader batches per rollout: a rollout is "
                                                             "--batch_size x this prompts per process "
                                                             "(default %(default)s)")
    g = p.add_argument_group("PPO")
    g.add_argument("--critic_learning_rate", type=positive_float, default=5e-7,
                   help="the critic's peak learning rate, on the same schedule (default %(default)s, MiniMind's)")
    g.add_argument("--clip_epsilon", type=positive_float, default=0.2,
                   help="the policy ratio's clip range, 1 +- this (default %(default)s)")
    g.add_argument("--cliprange_value", type=positive_float, default=0.2,
                   help="how far a value may move from the rollout's before its loss is clipped (default %(default)s)")
    g.add_argument("--vf_coef", type=nonneg_float, default=0.5, help="weight of the value loss (default %(default)s)")
    g.add_argument("--kl_coef", type=nonneg_float, default=0.02,
                   help="weight of the k3 KL to the frozen starting actor; 0 builds no reference (default %(default)s)")
    g.add_argument("--gamma", type=unit_float, default=1.0, help="GAE discount (default %(default)s)")
    g.add_argument("--lam", type=unit_float, default=0.95, help="GAE lambda (default %(default)s)")
    g.add_argument("--ppo_update_iters", type=positive_int, default=2,
                   help="shuffled passes over each rollout (default %(default)s)")
    g.add_argument("--mini_batch_size", type=positive_int, default=2,
                   help="rows per optimizer step per process (a pass takes rollout rows / this steps) (default %(default)s)")
    g.add_argument("--early_stop_kl", type=positive_float, default=0.25,
                   help="a minibatch whose approximate KL to the rollout's policy passes this takes no update, nor do "
                        "the rollout's later ones (default %(default)s)")
    add_rollout_flags(g)
    p._option_string_actions["--max_gen_len"].help = ("max new tokens per completion (default %(default)s, GRPO's "
                                                      "and MiniMind2's; MiniMind's 2026 1024)")
    add_reward_flags(g)
    args = finish_args(p.parse_args(argv))
    return args


def main(argv=None):
    args = parse_args(argv)
    from dataset.lm_dataset import prompt_collate
    from trainer.rl.ppo import ActorCritic, make_critic
    from trainer.stages.ppo import PPOStage
    with Trainer(args) as trainer:
        funcs, train_ds, val_ds = prompt_sets(trainer, args)
        actor = trainer.build_model()
        critic = make_critic(actor)
        trainer.log(f"critic: the actor's trunk, copied, under a value head "
                    f"({sum(p.numel() for p in critic.parameters()) / 1e6:.3f} M params)")
        trainer.fit(ActorCritic(actor, critic), train_ds, prompt_collate, PPOStage(args, funcs, args.reward_weights),
                    val_ds)


if __name__ == "__main__":
    run_main(main)
