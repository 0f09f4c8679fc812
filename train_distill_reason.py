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
from trainer.errors import run_main
from trainer.stages.reason_sft import main, parse_args  # noqa: F401  (parse_args: the flags, for tests and docs)

if __name__ == "__main__":
    run_main(main)
