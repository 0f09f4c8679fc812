"""Reasoning SFT (DeepSeek-R1 style): answers as "<think>\\n...\\n</think>\\n<answer>\\n...\\n</answer>".

    python train_distill_reason.py --data_path ./dataset/r1_mix_1024.jsonl
    torchrun --nproc_per_node 2 train_distill_reason.py --n_layers 16 --dim 768
reads {out_dir}/rlhf_{dim}[_moe].pth and writes {out_dir}/reason_{dim}[_moe].pth, which
`eval_model.py --model_mode 3` chats with (the thinking shown apart from the answer). The data is
MiniMind's SFT conversations format; the assistant contents carry the tags. --tag_weight multiplies
the loss of exactly the target tokens that spell the four tags (trainer/stages/reason_sft.py), so the model
learns to emit them; the loss is the weighted mean over the answer tokens. Samples without
well-formed tags are trained on as they are, and counted in one summary line.
"""
from trainer.args import make_parser, nonneg_float
from trainer.errors import run_main
from trainer.loop import Trainer


def parse_args(argv=None):
    p = make_parser("MiniMind Distill Reasoning", stage="reason", epochs=1, batch_size=8, learning_rate=1e-6,
                    accumulation_steps=1, max_seq_len=1024, data_path="./dataset/r1_mix_1024.jsonl",
                    from_weight="rlhf", save_weight="reason", wandb_project="MiniMind-Full-SFT",
                    log_interval=1, save_interval=50)
    p.add_argument("--tag_weight", type=nonneg_float, default=10.0,
                   help="loss weight of the target tokens spelling <think> </think> <answer> </answer> "
                        "(other answer tokens weigh 1; default %(default)s, as MiniMind2)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from dataset.lm_dataset import SFTDataset
    from trainer.stages.reason_sft import ReasonStage, TagWeighted, weighted_collate
    with Trainer(args) as trainer:
        model = trainer.build_model()
        train_ds = TagWeighted(trainer.dataset(SFTDataset, args.data_path, max_length=args.max_seq_len),
                               trainer.tokenizer, args.tag_weight)
        if trainer.is_main:
            bad = train_ds.count_malformed()
            trainer.log(f"{args.data_path}: {len(train_ds)} samples, {bad} without well-formed "
                        "<think>...</think><answer>...</answer> in every answer"
                        + (" (trained on as they are; their tags, if any, still weighted)" if bad else ""))
        val_ds = None
        if args.val_data_path:
            val_ds = TagWeighted(trainer.dataset(SFTDataset, args.val_data_path, max_length=args.max_seq_len),
                                 trainer.tokenizer, args.tag_weight)
        trainer.fit(model, train_ds, weighted_collate(trainer.pad_id), ReasonStage(args.tag_weight), val_ds)


if __name__ == "__main__":
    run_main(main)
