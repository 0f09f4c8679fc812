"""What the online RL scripts (train_grpo.py, train_ppo.py, train_spo.py, train_agent.py) share around their
stages: the rollout, reward and policy-loss flags, the reward functions made from them, and the prompt sets.

    add_rollout_flags(group)          --max_gen_len --temperature --top_p --log_completions --rollout_engine
    add_reward_flags(group)           --reasoning --reward_model_path --reward_funcs --reward_weights
    add_policy_loss_flags(group, ...) GRPO's loss flags (GRPO, SPO, agentic RL): --loss_type --beta --epsilon
                                      --epsilon_high --num_iterations --mask_truncated_completions
    setup_rewards(trainer, args, load_train)
                                      (reward functions, training set): --reward_funcs resolved before the
                                      data is read (a bad path or name stops first), then the default set
                                      (MiniMind's rules, the reward model when given, gt when the data has it)
    finish_args(args)                 the defaults that depend on other flags: --from_weight (reason with
                                      --reasoning 1, full_sft with 0), --epsilon_high (5.0 for cispo)
    prompt_sets(trainer, args)        (reward functions, training prompts, held-out prompts or None)
"""
import argparse

from trainer.args import nonneg_float, nonneg_int, positive_float, positive_int, str2bool, unit_float
from trainer.errors import UserError
from trainer.rl.grpo import LOSS_TYPES
from trainer.rl.rollout import ENGINES


def comma_list(v):
    return [s.strip() for s in v.split(",") if s.strip()]


def comma_floats(v):
    try:
        return [float(s) for s in comma_list(v)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {v!r}")


def add_rollout_flags(g, thinking_ratio=True):
    if thinking_ratio:  # train_agent.py has its own, drawn per trajectory
        g.add_argument("--thinking_ratio", type=unit_float, default=None,
                       help="share of the prompts rendered with thinking on (MiniMind-3's flag; its template's "
                            "open_thinking / enable_thinking), drawn per prompt; default: the template's own "
                            "default for every prompt (MiniMind-3's scripts: 0.9)")
    g.add_argument("--max_gen_len", type=positive_int, default=1536, help="max new tokens per completion (default %(default)s)")
    g.add_argument("--temperature", type=positive_float, default=0.8, help="sampling temperature (default %(default)s)")
    g.add_argument("--top_p", type=positive_float, default=1.0, help="nucleus sampling (default %(default)s)")
    g.add_argument("--log_completions", type=nonneg_int, default=0,
                   help="print this many prompt/completion/reward samples at each log step (a wandb table too)")
    g.add_argument("--rollout_engine", choices=sorted(ENGINES), default="torch",
                   help="what generates the completions (default %(default)s: the policy itself)")


def at_least_two(v):
    n = positive_int(v)
    if n < 2:
        raise argparse.ArgumentTypeError(f"expected at least 2 (a prompt's completions are compared with each "
                                         f"other), got {v!r}")
    return n


def add_policy_loss_flags(g, loss_type="cispo", beta=0.02, loss_help=None,
                          truncated_help="leave completions cut by --max_gen_len out of the loss"):
    g.add_argument("--loss_type", choices=LOSS_TYPES, default=loss_type,
                   help=loss_help or "cispo (MiniMind's default), grpo, dr_grpo or dapo; README says what each is "
                                     "(default %(default)s)")
    g.add_argument("--beta", type=nonneg_float, default=beta,
                   help="weight of the k3 KL to the frozen starting model; 0 builds no reference (default %(default)s)")
    g.add_argument("--epsilon", type=nonneg_float, default=0.2,
                   help="lower clip of the ratio, 1 - epsilon (default %(default)s)")
    g.add_argument("--epsilon_high", type=positive_float, default=None,
                   help="upper clip of the ratio, 1 + epsilon_high; for cispo the cap of the IS weight "
                        "(default: 5.0 for cispo, --epsilon otherwise)")
    g.add_argument("--num_iterations", type=positive_int, default=1,
                   help="optimizer steps on each step's rollouts (TRL's mu; > 1 lets the clip act) (default %(default)s)")
    g.add_argument("--mask_truncated_completions", type=str2bool, default=False, metavar="{1,0}",
                   help=truncated_help + " (default %(default)s)")


def add_reward_flags(g, reasoning=True):
    if reasoning:
        g.add_argument("--reasoning", type=int, choices=[0, 1], default=1,
                       help="1: a reasoning model (reads reason_*.pth; the format reward) (default %(default)s)")
    g.add_argument("--reward_model_path", type=str, default=None,
                   help="a reward model scored as the reward_model reward: train_reward.py's reward_{dim}.pth, or a "
                        "folder (sequence classification, or InternLM2-style get_score as MiniMind's "
                        "internlm2-1_8b-reward) (default: none)")
    g.add_argument("--reward_funcs", type=comma_list, default=None,
                   help="comma-separated rewards: format, length, repetition, gt, agent, reward_model, or "
                        "path/to/file.py:function (default: MiniMind's rules, the reward model when given, "
                        "gt when the data has it)")
    g.add_argument("--reward_weights", type=comma_floats, default=None,
                   help="comma-separated weights of the rewards, in their order (default all 1)")


def data_has_gt(ds):
    import pyarrow.compute as pc
    return bool(pc.any(pc.match_substring(ds.cache.data.data.table.column("fields"), '"gt":')).as_py())


def setup_rewards(trainer, args, load_train, default=None):
    """(reward functions [(name, f)], training set from load_train()), the set logged in one line.
    default: the names used without --reward_funcs (reward_model added when given; train_agent.py's
    agent), instead of MiniMind's rules."""
    from trainer.rl.rewards import RewardModel, resolve_funcs, reward_set
    reward_model = RewardModel(args.reward_model_path, trainer.device) if args.reward_model_path else None
    specs = args.reward_funcs or (default + (["reward_model"] if reward_model else []) if default else None)
    funcs = resolve_funcs(specs, reward_model)  # a bad path or name stops before the data
    train_ds = load_train()
    funcs = reward_set(funcs, getattr(args, "reasoning", 0), data_has_gt(train_ds), reward_model)
    if args.reward_weights is not None and len(args.reward_weights) != len(funcs):
        raise UserError(f"--reward_weights: {len(args.reward_weights)} weights for {len(funcs)} rewards "
                        f"({', '.join(n for n, _ in funcs)}); give one weight per reward")
    trainer.log("rewards: " + ", ".join(f"{n} x {w:g}" for (n, _), w in
                                       zip(funcs, args.reward_weights or [1.0] * len(funcs))))
    return funcs, train_ds


def finish_args(args):
    if args.from_weight is None:
        args.from_weight = "reason" if args.reasoning else "full_sft"
    if getattr(args, "loss_type", None) and args.epsilon_high is None:
        args.epsilon_high = 5.0 if args.loss_type == "cispo" else args.epsilon
    return args


def prompt_sets(trainer, args, default_rewards=None):
    """(reward functions, training prompts, --val_data_path's prompts or None), as PromptDataset."""
    from dataset.lm_dataset import PromptDataset
    funcs, train_ds = setup_rewards(
        trainer, args, lambda: trainer.dataset(PromptDataset, args.data_path, max_length=args.max_seq_len),
        default_rewards)
    val_ds = trainer.dataset(PromptDataset, args.val_data_path, max_length=args.max_seq_len) \
        if args.val_data_path else None
    return funcs, train_ds, val_ds
