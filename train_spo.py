"""SPO: single-stream policy optimisation (Xu & Ding, arXiv 2509.13232), MiniMind's third RLAIF script.

    python train_spo.py
    torchrun --nproc_per_node 2 train_spo.py --n_layers 16 --dim 768 --use_wandb
reads {out_dir}/reason_{dim}[_moe].pth (--reasoning 1, the default; full_sft with --reasoning 0) and writes
{out_dir}/spo_{dim}[_moe].pth. Data, prompts, rewards and rollout engine are GRPO's (train_grpo.py), but
each prompt gets ONE completion, judged against that prompt's own value tracker: a success estimate kept
across the run, forgotten faster the more the policy has moved since the prompt was last seen
(trainer/rl/spo.py). Advantages are normalised over the whole batch; the loss is GRPO's (--loss_type).
The trackers live in the resume file (trainer/stages/spo.py).

MiniMind's SPO kept ONE baseline for all prompts, its learning rate 1e-7 suited advantages it never
normalised; with the paper's normalised advantages the rate is GRPO's (1e-6, TRL's).
"""
from trainer.args import make_parser, positive_float, str2bool, unit_float
from trainer.errors import run_main
from trainer.loop import Trainer
from trainer.rl.online import add_policy_loss_flags, add_reward_flags, add_rollout_flags, finish_args, prompt_sets
from trainer.rl.spo import RHO_MODES

DEFAULT_LR = 1e-6


def parse_args(argv=None):
    p = make_parser("MiniMind SPO", stage="spo", epochs=1, batch_size=2, learning_rate=DEFAULT_LR,
                    accumulation_steps=4, max_seq_len=66, data_path="./dataset/rlaif-mini.jsonl",
                    from_weight=None, save_weight="spo", wandb_project="MiniMind-SPO",
                    log_interval=1, save_interval=10,
                    lr_help="peak learning rate (default %(default)s, GRPO's; MiniMind's 1e-7 suited advantages it "
                            "never normalised, see train_spo.py)")
    p._option_string_actions["--max_seq_len"].help = "prompt tokens kept (its last ones; default %(default)s)"
    p._option_string_actions["--from_weight"].help = ("start from {out_dir}/{from_weight}_{dim}[_moe].pth (default: "
                                                      "reason with --reasoning 1, full_sft with --reasoning 0)")
    p._option_string_actions["--val_data_path"].help = ("held-out prompts in the same format: greedy answers scored by "
                                                        "the same rewards, val/reward")
    p._option_string_actions["--batch_size"].help = "prompts per micro-batch per process, one completion each (default %(default)s)"
    g = p.add_argument_group("SPO")
    add_policy_loss_flags(g, loss_type="grpo", loss_help="GRPO's loss types; grpo (default): the mean over each "
                                                         "completion's tokens, then over completions, as MiniMind's SPO")
    g.add_argument("--rho_mode", choices=RHO_MODES, default="kl",
                   help="how fast a tracker forgets: kl (the paper's: 2^(-D/d_half), D the policy's drift since the "
                        "prompt was last seen) or constant (--rho_const) (default %(default)s)")
    g.add_argument("--rho_const", type=unit_float, default=0.9, help="the forgetting factor of --rho_mode constant "
                                                                     "(default %(default)s)")
    g.add_argument("--d_half", type=positive_float, default=0.06,
                   help="the drift at which a tracker keeps half its evidence (default %(default)s, the paper's)")
    g.add_argument("--rho_min", type=unit_float, default=0.5, help="lower clip of rho (default %(default)s, MiniMind's)")
    g.add_argument("--rho_max", type=unit_float, default=0.96, help="upper clip of rho (default %(default)s, the paper's)")
    g.add_argument("--prioritized_sampling", type=str2bool, default=True, metavar="{1,0}",
                   help="draw each batch's prompts with probability ~ sqrt(p (1 - p)) + 0.05 of their trackers (the "
                        "paper's curriculum); 0: every prompt once per epoch, shuffled (default 1)")
    g.add_argument("--prior", type=float, default=0.5,
                   help="a new prompt's baseline, worth one reward (default %(default)s: alpha = beta = 0.5)")
    g.add_argument("--init_samples", type=int, default=0,
                   help="before training, sample this many completions of every training prompt from the starting "
                        "policy and start each tracker from their rewards (the paper's offline initialisation, "
                        "which used 8); 0: every tracker starts at --prior (default %(default)s: it costs "
                        "init_samples generations of the whole data set)")
    add_rollout_flags(g)
    add_reward_flags(g)
    args = finish_args(p.parse_args(argv))
    if args.init_samples < 0:
        p.error(f"--init_samples {args.init_samples}: expected 0 (off) or a positive number of completions per prompt")
    if args.rho_min > args.rho_max:
        p.error(f"--rho_min {args.rho_min} is above --rho_max {args.rho_max}; expected rho_min <= rho_max")
    return args


def main(argv=None):
    args = parse_args(argv)
    from dataset.lm_dataset import prompt_collate
    from trainer.stages.spo import SPOStage
    with Trainer(args) as trainer:
        funcs, train_ds, val_ds = prompt_sets(trainer, args)
        model = trainer.build_model()
        trainer.fit(model, train_ds, prompt_collate, SPOStage(args, funcs, args.reward_weights), val_ds)


if __name__ == "__main__":
    run_main(main)
