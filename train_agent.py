"""Agentic RL: GRPO (CISPO by default) over multi-turn rollouts in which the model calls tools, MiniMind's
2026 train_agent.py.

    python train_agent.py
    torchrun --nproc_per_node 2 train_agent.py --n_layers 16 --dim 768 --use_wandb
reads {out_dir}/full_sft_{dim}[_moe].pth and writes {out_dir}/agent_{dim}[_moe].pth. The data is MiniMind's
agent_rl.jsonl: {"conversations": [system message with "tools", user turn, ...], "gt": [strings the final
answer must contain]}. Each prompt gets --num_generations trajectories: the model answers, its <tool_call>
blocks run (model/tools.py: the prompt's tools that this project has, or your --tools; errors are results
the model reads), the results come back as the chat template renders them, and it answers again, up to
--max_turns generations (trainer/rl/agent.py). Rewarded by MiniMind's agent reward (trainer/rl/rewards.py:
the calls against gt, gt in the final answer, tags, unfinished and repetition penalties), compared within
the group as GRPO, trained on the generated tokens only (trainer/stages/agent.py).

Defaults are MiniMind's, except the learning rate (GRPO's, see train_grpo.py: MiniMind's 3e-7 suited its
per-sequence mean; the cispo loss here is normalised over the step's tokens as TRL's DAPO).
"""
from trainer.args import make_parser, positive_int, unit_float
from trainer.errors import run_main
from trainer.loop import Trainer
from trainer.rl.online import (add_policy_loss_flags, add_reward_flags, add_rollout_flags, at_least_two, comma_list,
                               finish_args, prompt_sets)

DEFAULT_LR = 1e-6


def parse_args(argv=None):
    p = make_parser("MiniMind Agent RL", stage="agent", epochs=1, batch_size=2, learning_rate=DEFAULT_LR,
                    accumulation_steps=1, max_seq_len=1024, data_path="./dataset/agent_rl.jsonl",
                    from_weight="full_sft", save_weight="agent", wandb_project="MiniMind-Agent-RL",
                    log_interval=1, save_interval=10,
                    lr_help="peak learning rate (default %(default)s, GRPO's; MiniMind's 3e-7 suited its loss, "
                            "see train_agent.py)")
    p._option_string_actions["--max_seq_len"].help = "prompt tokens kept (its last ones; default %(default)s)"
    p._option_string_actions["--val_data_path"].help = ("held-out prompts in the same format: greedy trajectories "
                                                        "scored by the same rewards, val/reward")
    p._option_string_actions["--batch_size"].help = "prompts per micro-batch per process (default %(default)s)"
    g = p.add_argument_group("Agentic RL")
    g.add_argument("--num_generations", type=at_least_two, default=4,
                   help="trajectories per prompt, compared within their group (default %(default)s)")
    g.add_argument("--max_turns", type=positive_int, default=3,
                   help="generations per trajectory at most; the calls of the last are not run (default %(default)s)")
    g.add_argument("--max_total_len", type=positive_int, default=2500,
                   help="prompt + generations + tool results at most, in tokens (default %(default)s)")
    g.add_argument("--thinking_ratio", type=unit_float, default=0.1,
                   help="the share of trajectories whose prompt leaves thinking open; the others get the "
                        "template's empty think block (default %(default)s)")
    g.add_argument("--tools", type=comma_list, default=None,
                   help="your own tools, path/to/file.py:function,... (@tool functions, model/tools.py), run beside "
                        "MiniMind's six when a prompt offers them (default: the six)")
    add_policy_loss_flags(g, beta=0.1, truncated_help="leave trajectories cut by a length limit out of the loss")
    g.add_argument("--scale_rewards", choices=("group", "batch", "none"), default="group",
                   help="divide advantages by the group's reward std, the batch's, or not at all (default %(default)s)")
    add_rollout_flags(g, thinking_ratio=False)
    p._option_string_actions["--max_gen_len"].help = "new tokens per generation at most (default %(default)s)"
    p.set_defaults(max_gen_len=768)
    add_reward_flags(g, reasoning=False)
    p._option_string_actions["--reward_funcs"].help = (
        "comma-separated rewards: agent, format, length, repetition, gt, reward_model, or path/to/file.py:function "
        "(default: agent, and reward_model when given)")
    return finish_args(p.parse_args(argv))


def main(argv=None):
    args = parse_args(argv)
    from dataset.lm_dataset import prompt_collate
    from model.tools import ToolRegistry
    from trainer.stages.agent import AgentStage
    registry = ToolRegistry()
    if args.tools:
        registry.select(args.tools)  # loads the files; a bad one stops here, before anything is built
    with Trainer(args) as trainer:
        funcs, train_ds, val_ds = prompt_sets(trainer, args, default_rewards=["agent"])
        trainer.log(f"tools: {', '.join(registry.names())}; up to {args.max_turns} generations per trajectory")
        model = trainer.build_model()
        trainer.fit(model, train_ds, prompt_collate, AgentStage(args, funcs, args.reward_weights, registry), val_ds)


if __name__ == "__main__":
    run_main(main)
