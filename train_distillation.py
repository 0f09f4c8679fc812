"""White-box knowledge distillation on {"conversations"} JSONL: a frozen teacher trains a student.

    python train_distillation.py --data_path ./dataset/sft_mini_512.jsonl
distils the teacher {out_dir}/full_sft_768.pth (768 x 16) into the student {out_dir}/full_sft_512.pth
(512 x 8), MiniMind2's pair, and writes {out_dir}/full_dist_512.pth. The loss over the assistant tokens
is alpha * CE + (1 - alpha) * T^2 * KL(teacher || student) (trainer/stages/distill.py); any transformers
causal LM with the student's tokenizer can teach instead (--teacher_model_path DIR).
"""
from trainer.args import make_parser, positive_float, positive_int, str2bool
from trainer.errors import run_main
from trainer.loop import Trainer


def unit_float(v):
    import argparse
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {v!r}")
    if not 0.0 <= f <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {v!r}")
    return f


def parse_args(argv=None):
    # MiniMind2's defaults; its --data_path default was a placeholder (sft_xxx.jsonl): the SFT default here
    p = make_parser("MiniMind Knowledge Distillation", stage="distill", epochs=6, batch_size=32,
                    learning_rate=5e-6, accumulation_steps=1, max_seq_len=512,
                    data_path="./dataset/sft_mini_512.jsonl", from_weight="full_sft", save_weight="full_dist",
                    wandb_project="MiniMind-Full-SFT")
    g = p.add_argument_group("distillation")
    g.add_argument("--alpha", type=unit_float, default=0.0,
                   help="weight of the cross-entropy on the data; 1 - alpha weighs the KL to the teacher "
                        "(default %(default)s: the teacher's distributions only)")
    g.add_argument("--temperature", type=positive_float, default=1.0,
                   help="softmax temperature of both models in the KL term, which is scaled by T^2 (default %(default)s)")
    g.add_argument("--teacher_dim", type=positive_int, default=768, help="teacher hidden size (default %(default)s)")
    g.add_argument("--teacher_n_layers", type=positive_int, default=16, help="teacher layers (default %(default)s)")
    g.add_argument("--teacher_use_moe", type=str2bool, default=False, metavar="{1,0,true,false}",
                   help="the teacher is a mixture-of-experts model (default %(default)s)")
    g.add_argument("--teacher_weight", type=str, default="full_sft",
                   help="teacher weights {out_dir}/{teacher_weight}_{teacher_dim}[_moe].pth (a path ending in .pth "
                        "is used as is) (default %(default)s)")
    g.add_argument("--teacher_model_path", type=str, default=None,
                   help="a transformers causal LM folder with the student's tokenizer as the teacher, instead of "
                        "a .pth (e.g. one written by scripts/convert_model.py)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from dataset.lm_dataset import SFTDataset, pad_collate
    from trainer.stages.distill import DistillStage, load_teacher
    with Trainer(args) as trainer:
        model = trainer.build_model()
        teacher = load_teacher(trainer, model)
        train_ds = trainer.dataset(SFTDataset, args.data_path, max_length=args.max_seq_len)
        val_ds = trainer.dataset(SFTDataset, args.val_data_path, max_length=args.max_seq_len) if args.val_data_path else None
        trainer.fit(model, train_ds, pad_collate(trainer.pad_id), DistillStage(teacher, args.alpha, args.temperature),
                    val_ds)


if __name__ == "__main__":
    run_main(main)
