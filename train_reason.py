"""Reasoning SFT under MiniMind's 2025-10 name: the same script as train_distill_reason.py, same flags and defaults.

    python train_reason.py --data_path ./dataset/r1_mix_1024.jsonl
    torchrun --nproc_per_node 2 train_reason.py --n_layers 16 --dim 768
reads {out_dir}/rlhf_{dim}[_moe].pth (--from_weight dpo reads MiniMind's later name for it) and writes
{out_dir}/reason_{dim}[_moe].pth. MiniMind's 2025-10 train_reason.py defaults to --max_seq_len 720 and
--log_interval 100 --save_interval 100; pass them to get its run exactly.
"""
from trainer.errors import run_main
from trainer.stages.reason_sft import main

if __name__ == "__main__":
    run_main(main, None, "train_reason.py")
