"""LoRA fine-tuning on {"conversations"} JSONL (SFT's format and loss), through peft.

    python train_lora.py                      # dataset/lora_identity.jsonl -> out/lora/lora_identity_512.pth
    torchrun --nproc_per_node 2 train_lora.py --data_path ./dataset/lora_medical.jsonl --lora_name lora_medical \\
        --n_layers 16 --dim 768
    python eval_model.py --lora_name lora_medical --model_mode 2 --n_layers 16 --dim 768

reads {out_dir}/{from_weight}_{dim}[_moe].pth (default rlhf), freezes it, and trains low-rank
adapters on --lora_targets (peft's LoraConfig + get_peft_model). It writes only the adapter, in
MiniMind2's format, to {out_dir}/lora/{lora_name}_{dim}[_moe].pth; the resume file beside it holds
the adapter and its optimizer, not the base. See model/lora.py for the file format.
"""
from trainer.args import make_parser, positive_float, positive_int
from trainer.errors import UserError, run_main
from trainer.loop import Trainer

# MiniMind2 shipped rank 16 (58e3af0, and its later tree again, 101d7df); the April-2025 code
# 561979c had 8 in between. 16 it is: with q_proj,o_proj on MiniMind2-Small that is 0.262M
# parameters (1% of the model), and rank is the adapter's capacity, which a domain set the size of
# MiniMind's lora_medical.jsonl (34 MB) needs more than an identity set does. On the demo's sets
# (scripts/demo.py's adapters, one run each) rank 8 answered 10 of the 12 held-out identity
# questions where rank 16 answered 11, and the same 26 of 32 domain questions.
DEFAULT_RANK = 16


def parse_args(argv=None):
    p = make_parser("MiniMind LoRA SFT", stage="lora", epochs=10, batch_size=32, learning_rate=1e-4,
                    accumulation_steps=1, max_seq_len=512, data_path="./dataset/lora_identity.jsonl",
                    from_weight="rlhf", save_weight=None, wandb_project="MiniMind-LoRA-SFT")
    g = p.add_argument_group("LoRA")
    g.add_argument("--lora_name", type=str, default="lora_identity",
                   help="write {out_dir}/lora/{lora_name}_{dim}[_moe].pth (default %(default)s)")
    g.add_argument("--lora_rank", type=positive_int, default=DEFAULT_RANK,
                   help="rank of the adapters (default %(default)s, MiniMind2's; its later code used 8)")
    g.add_argument("--lora_alpha", type=positive_float, default=None,
                   help="peft's lora_alpha; the update is scaled by alpha/rank (default: = rank, scale 1 as "
                        "MiniMind; a file always stores the scaled adapter)")
    g.add_argument("--lora_targets", type=str, default="q_proj,o_proj",
                   help="linear layers to adapt: a comma list of names (q_proj,k_proj,v_proj,o_proj,gate_proj,"
                        "up_proj,down_proj), or 'all' = every linear layer of the blocks (default %(default)s: "
                        "MiniMind2's square projections)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.from_weight.lower() == "none":
        raise UserError("--from_weight none: LoRA adapts a trained model; pass rlhf, full_sft or a .pth path")
    from dataset.lm_dataset import SFTDataset, pad_collate
    from model.lora import add_lora, check_lora_name, lora_path, trainable_line
    from trainer.stages.lora import LoRAStage
    check_lora_name(args.lora_name)
    alpha = args.lora_alpha if args.lora_alpha is not None else float(args.lora_rank)
    with Trainer(args) as trainer:
        model = trainer.build_model()
        base = trainer.from_weight_path()
        model = add_lora(model, args.lora_rank, alpha, args.lora_targets)
        trainer.log(trainable_line(model))
        train_ds = trainer.dataset(SFTDataset, args.data_path, max_length=args.max_seq_len)
        val_ds = trainer.dataset(SFTDataset, args.val_data_path, max_length=args.max_seq_len) if args.val_data_path else None
        stage = LoRAStage(lora_path(args.out_dir, args.lora_name, args.dim, args.use_moe), args.lora_rank, alpha,
                          args.lora_targets, base)
        trainer.fit(model, train_ds, pad_collate(trainer.pad_id), stage, val_ds)


if __name__ == "__main__":
    run_main(main)
