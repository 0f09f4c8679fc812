#!/usr/bin/env python3
"""The whole pipeline in one command, on CPU: pretrain -> SFT -> DPO -> chat.

    python scripts/demo.py            # the full demo: a few minutes on 2 CPU cores
    python scripts/demo.py --quick    # a shorter, rougher run
    python scripts/demo.py --model_family minimind3   # the same demo on the MiniMind-3 family (out/demo_minimind3)

It trains a tiny MiniMind model on the bundled demo corpus (dataset/demo: an invented world of
countries and animal characters, English and Chinese) by running the real training scripts,
exactly as a user would:

    train_pretrain.py  -> {out_dir}/pretrain_{dim}.pth   (reads every fact as plain text)
    train_full_sft.py  -> {out_dir}/full_sft_{dim}.pth   (learns to answer questions)
    train_dpo.py       -> {out_dir}/rlhf_{dim}.pth       (prefers right/polite answers)
    train_distill_reason.py -> {out_dir}/reason_{dim}.pth (thinks in <think>, then answers)
    train_lora.py      -> {out_dir}/lora/lora_{identity,domain}_{dim}.pth (adapters on the DPO model)

then asks the SFT and the DPO model the held-out questions (greedy decoding). Their facts appear
only in the pretraining texts, never in an SFT or DPO sample, so a right answer shows the model
recalled what it read in pretraining and learnt in SFT how to answer. An answer counts as right
when it holds every expected keyword and none of the other possible values
(dataset/demo/README.md). It prints each answer, `held-out accuracy: K/N` after SFT and after
DPO, the DPO reward accuracy, and writes the stages' loss curves to a PNG. The reasoning stage
is scored on 2-hop held-out questions (reason_heldout.jsonl: two facts each, never chained in
training): the reason model's answers, the DPO model's answers to the same questions asked
directly, and how many of the reason model's outputs have well-formed <think>/<answer> tags.
After DPO two LoRA adapters (train_lora.py on lora_identity.jsonl and lora_domain.jsonl; see
demo/lora_stage.py) are scored with and without: the identity hit rate and the domain accuracy on
phrasings their sets never use, and the held-out accuracy the DPO model keeps with each.

Everything goes to --out_dir (default out/demo): checkpoints, each stage's full log in logs/,
loss_curves.png and demo_results.json (all the numbers, machine-readable).
--from_stage sft|dpo|chat starts later, reusing what an earlier run left in --out_dir.

The demo's machinery is the demo/ package (demo/run.py: the flags and the run); this file starts it.
"""
import os
import sys

# the repository root first, so that `demo` is the demo/ package and not this file
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from demo.run import cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli())
