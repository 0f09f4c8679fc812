"""A reward model from preference pairs: MiniMind's trunk and a scalar head, trained Bradley-Terry on
MiniMind's DPO data ({"chosen", "rejected"} conversations, an optional "margin"), as TRL's RewardTrainer.

    python train_reward.py
    torchrun --nproc_per_node 2 train_reward.py --n_layers 16 --dim 768 --use_wandb
reads the trunk of {out_dir}/full_sft_{dim}[_moe].pth (the head starts fresh) and writes
{out_dir}/reward_{dim}[_moe].pth. Use it as `train_grpo.py --reward_model_path out/reward_512.pth`, or export
it with `scripts/convert_model.py --to llama --weight reward` (LlamaForSequenceClassification).
"""
from trainer.args import make_parser, nonneg_float
from trainer.errors import run_main
from trainer.loop import Trainer

# Default learning rate: TRL's examples/scripts/reward_modeling.py trains a whole model at 1e-5 and a LoRA
# adapter at 1e-4 (RewardConfig's default, which suits adapters).
DEFAULT_LR = 1e-5


def parse_args(argv=None):
    p = make_parser("MiniMind reward model", stage="reward", epochs=1, batch_size=8, learning_rate=DEFAULT_LR,
                    accumulation_steps=1, max_seq_len=3000, data_path="./dataset/dpo.jsonl",
                    from_weight="full_sft", save_weight="reward", wandb_project="MiniMind-Reward")
    p._option_string_actions["--batch_size"].help = "pairs per micro-batch per process (default %(default)s)"
    p._option_string_actions["--max_seq_len"].help = (
        "a pair with a conversation longer than this is left out, not cut, as TRL does (default %(default)s)")
    p._option_string_actions["--data_path"].help = (
        'preference pairs: MiniMind\'s DPO JSONL, {"chosen": [messages], "rejected": [messages]} and an optional '
        '"margin" (default %(default)s)')
    p._option_string_actions["--val_data_path"].help = "held-out pairs: val/loss and val/accuracy (pair accuracy)"
    g = p.add_argument_group("reward model")
    g.add_argument("--center_rewards_coefficient", type=nonneg_float, default=None,
                   help="TRL's centering term: adds this times mean((r_chosen + r_rejected)^2) to the loss, which "
                        "keeps the rewards near 0 (TRL recommends 0.01; default: none)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from dataset.lm_dataset import RewardDataset, reward_collate
    from trainer.stages.reward import RewardStage, build_reward_model
    with Trainer(args) as trainer:
        model = build_reward_model(trainer)
        train_ds = trainer.dataset(RewardDataset, args.data_path, max_length=args.max_seq_len)
        val_ds = trainer.dataset(RewardDataset, args.val_data_path, max_length=args.max_seq_len) \
            if args.val_data_path else None
        trainer.fit(model, train_ds, reward_collate(trainer.pad_id), RewardStage(args.center_rewards_coefficient),
                    val_ds)


if __name__ == "__main__":
    run_main(main)
