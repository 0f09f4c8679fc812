"""Supervised fine-tuning on {"conversations"} JSONL: loss on the assistant's tokens only.

    python train_full_sft.py --data_path ./dataset/sft_512.jsonl
reads {out_dir}/pretrain_{dim}[_moe].pth and writes {out_dir}/full_sft_{dim}[_moe].pth. MiniMind's
chain to a longer context:
    mv out/full_sft_512.pth out/pretrain_512.pth
    python train_full_sft.py --data_path ./dataset/sft_2048.jsonl --max_seq_len 2048
or, without renaming: --from_weight full_sft --save_weight full_sft_2048.
"""
from trainer.args import make_parser, unit_float
from trainer.errors import run_main
from trainer.loop import Trainer
from trainer.stages import LMStage


def parse_args(argv=None):
    p = make_parser("MiniMind Full SFT", stage="sft", epochs=1, batch_size=32, learning_rate=5e-5,
                    accumulation_steps=1, max_seq_len=512, data_path="./dataset/sft_mini_512.jsonl",
                    from_weight="pretrain", save_weight="full_sft", wandb_project="MiniMind-Full-SFT")
    g = p.add_argument_group("MiniMind-3's SFT data processing (trainer/stages/chat_augment.py)")
    g.add_argument("--add_system_ratio", type=unit_float, default=None,
                   help="share of the conversations without a system turn that get one of MiniMind's system "
                        "prompts (default 0.2 with --model_family minimind3, as MiniMind-3's; 0 otherwise)")
    g.add_argument("--empty_think_ratio", type=unit_float, default=None,
                   help="share of the direct answers that keep their empty <think>\\n\\n</think>\\n\\n block, "
                        "the others trained without it (default 0.2 with --model_family minimind3, as MiniMind-3's; "
                        "every answer as it is otherwise)")
    args = p.parse_args(argv)
    if args.model_family == "minimind3":
        from trainer.stages.chat_augment import MINIMIND3_RATIOS
        for k, v in MINIMIND3_RATIOS.items():
            if getattr(args, k) is None:
                setattr(args, k, v)
    args.add_system_ratio = args.add_system_ratio or 0.0
    return args


def main(argv=None):
    args = parse_args(argv)
    from dataset.lm_dataset import SFTDataset, pad_collate
    with Trainer(args) as trainer:
        model = trainer.build_model()
        train_ds = trainer.dataset(SFTDataset, args.data_path, max_length=args.max_seq_len)
        if (args.add_system_ratio or args.empty_think_ratio is not None) and getattr(train_ds, "streaming", False):
            trainer.log("--streaming: the SFT data is read as it is (MiniMind-3's data processing needs the token cache)")
        elif args.add_system_ratio or args.empty_think_ratio is not None:
            from trainer.stages.chat_augment import ChatAugment
            train_ds = ChatAugment(train_ds, trainer.tokenizer, args.add_system_ratio, args.empty_think_ratio,
                                   args.seed, args.max_seq_len)
            trainer.log(f"SFT data as MiniMind-3 processes it: a system prompt added to {args.add_system_ratio:.0%} "
                        "of the conversations without one, "
                        + ("every empty think block kept" if args.empty_think_ratio is None else
                           f"the empty think block kept in {args.empty_think_ratio:.0%} of the direct answers")
                        + " (which ones: fixed by --seed)")
        val_ds = trainer.dataset(SFTDataset, args.val_data_path, max_length=args.max_seq_len) if args.val_data_path else None
        trainer.fit(model, train_ds, pad_collate(trainer.pad_id), LMStage("sft", "Full-SFT"), val_ds)


if __name__ == "__main__":
    run_main(main)
