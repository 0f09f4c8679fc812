"""What the online RL scripts (train_grpo.py, train_ppo.py) share around their stages: the rollout and reward
flags, and the reward functions made from them.

    add_rollout_flags(group)          --max_gen_len --temperature --top_p --log_completions --rollout_engine
    add_reward_flags(group)           --reasoning --reward_model_path --reward_funcs --reward_weights
    setup_rewards(trainer, args, load_train)
                                      (reward functions, training set): --reward_funcs resolved before the
                                      data is read (a bad path or name stops first), then the default set
                                      (MiniMind's rules, the reward model when given, gt when the data has it)
"""
import argparse

from trainer.args import nonneg_int, positive_float, positive_int
from trainer.errors import UserError
from trainer.rl.rollout import ENGINES


def comma_list(v):
    return [s.strip() for s in v.split(",") if s.strip()]


def comma_floats(v):
    try:
        return [float(s) for s in comma_list(v)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {v!r}")


def add_rollout_flags(g):
    g.add_argument("--max_gen_len", type=positive_int, default=1536, help="max new tokens per completion (default %(default)s)")
    g.add_argument("--temperature", type=positive_float, default=0.8, help="sampling temperature (default %(default)s)")
    g.add_argument("--top_p", type=positive_float, default=1.0, help="nucleus sampling (default %(default)s)")
    g.add_argument("--log_completions", type=nonneg_int, default=0,
                   help="print this many prompt/completion/reward samples at each log step (a wandb table too)")
    g.add_argument("--rollout_engine", choices=sorted(ENGINES), default="torch",
                   help="what generates the completions (default %(default)s: the policy itself)")


def add_reward_flags(g):
    g.add_argument("--reasoning", type=int, choices=[0, 1], default=1,
                   help="1: a reasoning model (reads reason_*.pth; the format reward) (default %(default)s)")
    g.add_argument("--reward_model_path", type=str, default=None,
                   help="a reward model scored as the reward_model reward: train_reward.py's reward_{dim}.pth, or a "
                        "folder (sequence classification, or InternLM2-style get_score as MiniMind's "
                        "internlm2-1_8b-reward) (default: none)")
    g.add_argument("--reward_funcs", type=comma_list, default=None,
                   help="comma-separated rewards: format, length, repetition, gt, reward_model, or "
                        "path/to/file.py:function (default: MiniMind's rules, the reward model when given, "
                        "gt when the data has it)")
    g.add_argument("--reward_weights", type=comma_floats, default=None,
                   help="comma-separated weights of the rewards, in their order (default all 1)")


def data_has_gt(ds):
    import pyarrow.compute as pc
    return bool(pc.any(pc.match_substring(ds.cache.data.data.table.column("fields"), '"gt":')).as_py())


def setup_rewards(trainer, args, load_train):
    """(reward functions [(name, f)], training set from load_train()), the set logged in one line."""
    from trainer.rl.rewards import RewardModel, resolve_funcs, reward_set
    reward_model = RewardModel(args.reward_model_path, trainer.device) if args.reward_model_path else None
    funcs = resolve_funcs(args.reward_funcs, reward_model)  # a bad path or name stops before the data
    train_ds = load_train()
    funcs = reward_set(funcs, args.reasoning, data_has_gt(train_ds), reward_model)
    if args.reward_weights is not None and len(args.reward_weights) != len(funcs):
        raise UserError(f"--reward_weights: {len(args.reward_weights)} weights for {len(funcs)} rewards "
                        f"({', '.join(n for n, _ in funcs)}); give one weight per reward")
    trainer.log("rewards: " + ", ".join(f"{n} x {w:g}" for (n, _), w in
                                       zip(funcs, args.reward_weights or [1.0] * len(funcs))))
    return funcs, train_ds
