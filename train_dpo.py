"""DPO on {"chosen", "rejected"} JSONL, starting from (and referenced to) the SFT weights.

    python train_dpo.py --batch_size 4
reads {out_dir}/full_sft_{dim}[_moe].pth and writes {out_dir}/rlhf_{dim}[_moe].pth.
"""
from trainer.args import make_parser, positive_float
from trainer.errors import run_main
from trainer.loop import Trainer

# Default learning rate. MiniMind2 used 1e-8 because its log-probs were AVERAGED over the padded
# length (~3000 positions), which shrank the DPO logits ~3000-fold (beta / 3000 in effect): the loss
# sat at ln 2 and the tiny rate only kept the model from drifting. With log-probs SUMMED over the
# response tokens (TRL's convention) the implicit rewards have their true scale and 1e-6, TRL's DPO
# default, works. Measured on dataset/demo (64x2 model, pretrain -> SFT -> 2 DPO epochs, batch 8):
#   SFT model (the reference): chosen perplexity 3.3226
#   lr 1e-6: rewards/accuracies 0.81, margins 0.02, chosen perplexity 3.3226
#   lr 5e-6: rewards/accuracies 0.81, margins 0.13, chosen perplexity 3.3260
#   lr 2e-5: rewards/accuracies 0.82, margins 0.55, chosen perplexity 3.4039 (chosen log-probs fall)
# so 1e-6 learns the preferences without eroding the SFT model; raise it for short runs.
DEFAULT_LR = 1e-6


def parse_args(argv=None):
    p = make_parser("MiniMind DPO", stage="dpo", epochs=2, batch_size=8, learning_rate=DEFAULT_LR,
                    accumulation_steps=1, max_seq_len=3000, data_path="./dataset/dpo.jsonl",
                    from_weight="full_sft", save_weight="rlhf", wandb_project="MiniMind-RLHF",
                    lr_help="peak learning rate (default %(default)s; MiniMind's 1e-8 only suited its "
                            "length-averaged log-probs)")
    p.add_argument("--beta", type=positive_float, default=0.1,
                   help="DPO temperature: strength of the pull towards the reference (default %(default)s)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from dataset.lm_dataset import DPODataset, dpo_collate
    from trainer.stages.dpo import DPOStage
    with Trainer(args) as trainer:
        model = trainer.build_model()
        train_ds = trainer.dataset(DPODataset, args.data_path, max_length=args.max_seq_len)
        val_ds = trainer.dataset(DPODataset, args.val_data_path, max_length=args.max_seq_len) if args.val_data_path else None
        trainer.fit(model, train_ds, dpo_collate(trainer.pad_id), DPOStage(args.beta), val_ds)


if __name__ == "__main__":
    run_main(main)
