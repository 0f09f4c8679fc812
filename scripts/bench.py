"""Throughput benchmark: this project against transformers' Llama and against MiniMind's batching.

    python scripts/bench.py                      # full run (CPU: ~20-40 min on 2 cores; CUDA: minutes)
    python scripts/bench.py --quick              # tiny sizes, < 1 min: checks the machinery, not speed
    python scripts/bench.py --compile            # also torch.compile'd variants (compile time reported apart)
    python scripts/bench.py --json bench.json --sections train,gen

The command line only. The run is benchmarks/suite.py; each section is a module of benchmarks/ whose
docstring says what it measures and how; timing (variants interleaved, order rotated each repetition,
paired per-repetition ratios) and peak memory are benchmarks/harness.py.

Sections
  train     benchmarks/train_step.py    one training step, MiniMind vs transformers' Llama, same weights
  sft       benchmarks/sft_epoch.py     an SFT epoch: MiniMind's batching and loss vs the project's
  dpo       benchmarks/dpo_epoch.py     a DPO epoch: MiniMind's batching and reference model vs the project's
  dpo_step  benchmarks/dpo_step.py      a DPO step: reference log-probs on the fly vs cached
  distill   benchmarks/distill_step.py  a distillation step: full-logits loss vs the chunked DistillStage
  grpo      benchmarks/grpo_step.py     a GRPO step (rollout, rewards, reference, update): ours vs TRL vs MiniMind's
  ppo       benchmarks/ppo_step.py      a PPO rollout and update (four models in MiniMind's): ours vs MiniMind's
  gen       benchmarks/generation.py    greedy generate() with the KV cache, ours vs Llama
  mfu       benchmarks/mfu.py           the machine's matmul peak and each train variant's MFU
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402

from benchmarks.suite import SECTIONS, run  # noqa: E402


def parse_args(argv=None):
    from trainer.args import ArgumentParser  # argparse with a one-line error, exit 2
    p = ArgumentParser(description="Benchmark: train step, SFT/DPO epochs, DPO step, distillation step, GRPO step, generation, MFU")
    p.add_argument("--quick", action="store_true", help="tiny sizes: exercises everything in < 1 min")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    p.add_argument("--reps", type=int, default=None, help="timed repetitions per variant (>= 5)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd variants of the train step")
    p.add_argument("--json", default=None, help="where to write the results (default bench_<device>.json)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    a = p.parse_args(argv)
    secs = [s.strip() for s in a.sections.split(",") if s.strip()]
    bad = [s for s in secs if s not in SECTIONS]
    if bad:
        p.error(f"--sections: unknown {','.join(bad)}; choose from {','.join(SECTIONS)}")
    if a.reps is not None and a.reps < 5:
        p.error("--reps: at least 5 (medians of fewer runs mean little on a noisy machine)")
    a.sections = secs
    return a


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.stderr.write("bench.py: --device cuda but CUDA is not available; use --device cpu\n")
        sys.exit(2)
    if args.threads:
        torch.set_num_threads(args.threads)
    return run(args, device, argv)


if __name__ == "__main__":
    main()
