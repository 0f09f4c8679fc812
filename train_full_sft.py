"""Supervised fine-tuning on {"conversations"} JSONL: loss on the assistant's tokens only.

    python train_full_sft.py --data_path ./dataset/sft_512.jsonl
reads {out_dir}/pretrain_{dim}[_moe].pth and writes {out_dir}/full_sft_{dim}[_moe].pth. MiniMind's
chain to a longer context:
    mv out/full_sft_512.pth out/pretrain_512.pth
    python train_full_sft.py --data_path ./dataset/sft_2048.jsonl --max_seq_len 2048
or, without renaming: --from_weight full_sft --save_weight full_sft_2048.
"""
from trainer.args import make_parser
from trainer.errors import run_main
from trainer.loop import Trainer
from trainer.stages import LMStage


def parse_args(argv=None):
    p = make_parser("MiniMind Full SFT", stage="sft", epochs=1, batch_size=32, learning_rate=5e-5,
                    accumulation_steps=1, max_seq_len=512, data_path="./dataset/sft_mini_512.jsonl",
                    from_weight="pretrain", save_weight="full_sft", wandb_project="MiniMind-Full-SFT")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from dataset.lm_dataset import SFTDataset, pad_collate
    with Trainer(args) as trainer:
        model = trainer.build_model()
        train_ds = trainer.dataset(SFTDataset, args.data_path, max_length=args.max_seq_len)
        val_ds = trainer.dataset(SFTDataset, args.val_data_path, max_length=args.max_seq_len) if args.val_data_path else None
        trainer.fit(model, train_ds, pad_collate(trainer.pad_id), LMStage("sft", "Full-SFT"), val_ds)


if __name__ == "__main__":
    run_main(main)
