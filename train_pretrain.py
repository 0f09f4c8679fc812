"""Pretraining: next-token prediction on {"text"} JSONL, from scratch by default.

    python train_pretrain.py                                   # MiniMind2-Small (512 x 8)
    torchrun --nproc_per_node 2 train_pretrain.py --n_layers 16 --dim 768 --use_wandb
writes {out_dir}/pretrain_{dim}[_moe].pth, which train_full_sft.py starts from.
"""
from trainer.args import make_parser, str2bool
from trainer.errors import UserError, run_main
from trainer.loop import Trainer
from trainer.stages import LMStage


def parse_args(argv=None):
    p = make_parser("MiniMind Pretraining", stage="pretrain", epochs=1, batch_size=32, learning_rate=5e-4,
                    accumulation_steps=8, max_seq_len=512, data_path="./dataset/pretrain_hq.jsonl",
                    from_weight="none", save_weight="pretrain", wandb_project="MiniMind-Pretrain")
    p.add_argument("--packed", type=str2bool, default=True, metavar="{1,0}",
                   help="concatenate documents into full max_seq_len rows (no padding); 0 = one "
                        "document per row, padded to the batch's longest")
    p.add_argument("--streaming", type=str2bool, default=False, metavar="{1,0}",
                   help="read and tokenize the shards while training (a datasets IterableDataset, split "
                        "by rank, resumable), for corpora larger than the disk; no cache, no length "
                        "grouping, epochs are estimated")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from dataset.lm_dataset import PackedPretrainDataset, PretrainDataset, pad_collate
    if args.streaming and not args.packed:
        raise UserError("--streaming 1 packs documents into --max_seq_len rows; drop --packed 0")
    with Trainer(args) as trainer:
        model = trainer.build_model()
        cls = PackedPretrainDataset if args.packed else PretrainDataset
        if args.streaming:
            from dataset.streaming import StreamingPretrainDataset
            train_ds = trainer.dataset(StreamingPretrainDataset, args.data_path, max_length=args.max_seq_len)
        else:
            train_ds = trainer.dataset(cls, args.data_path, max_length=args.max_seq_len)
        val_ds = trainer.dataset(cls, args.val_data_path, max_length=args.max_seq_len) if args.val_data_path else None
        trainer.fit(model, train_ds, pad_collate(trainer.pad_id), LMStage("pretrain", "Pretrain"), val_ds)


if __name__ == "__main__":
    run_main(main)
