"""The run of scripts/bench.py: its sections, their sizes (full and --quick, CPU and CUDA), and the
chosen sections run in order into one results dict, with its targets, written as JSON and printed as a
table. Each section is a module of this package (its docstring says what it measures)."""
import json
import sys
import tempfile
import time

import torch

from benchmarks.distill_step import bench_distill
from benchmarks.dpo_epoch import bench_dpo
from benchmarks.dpo_step import bench_dpo_step
from benchmarks.generation import bench_gen
from benchmarks.grpo_step import bench_grpo, grpo_table, grpo_targets
from benchmarks.harness import loadavg, machine_info
from benchmarks.mfu import MatmulPeak, add_mfu
from benchmarks.ppo_step import bench_ppo, ppo_table
from benchmarks.models import Trainee, build_pair, plain_lm_loss
from benchmarks.report import table, targets
from benchmarks.sft_epoch import bench_sft
from benchmarks.train_step import bench_train

SECTIONS = ("train", "sft", "dpo", "dpo_step", "distill", "grpo", "ppo", "gen", "mfu")

# ----------------------------------------------------------------------------------------------
# Settings: full and --quick, CPU and CUDA

FULL_CPU = dict(
    train_configs=[("26M", 512, 8), ("small", 256, 4)], train_batch=(2, 512),
    epoch_config=("small", 256, 4), sft_samples=32, sft_batch=8, sft_max_len=512,
    dpo_pairs=8, dpo_batch=4, dpo_max_len=1024, dpo_step_batches=2,
    gen_config=("26M", 512, 8), gen_prompt=32, gen_new=128, matmul_n=2048, reps=5, scale_samples=4000,
    distill_student=("26M", 512, 8), distill_teacher=("104M", 768, 16), distill_batch=(4, 512), distill_mem_rounds=3,
    grpo_config=("26M", 512, 8), grpo_prompts=2, grpo_generations=4, grpo_new_tokens=64,
    ppo_config=("26M", 512, 8), ppo_prompts=8, ppo_new_tokens=64)
FULL_CUDA = dict(  # MiniMind2 itself, and batches a GPU is for
    FULL_CPU, train_configs=[("26M", 512, 8), ("104M", 768, 16)], train_batch=(32, 512),
    epoch_config=("26M", 512, 8), sft_samples=1024, sft_batch=32,
    dpo_pairs=256, dpo_batch=8, dpo_max_len=3000, dpo_step_batches=4, gen_new=256, matmul_n=8192,
    grpo_prompts=4, grpo_generations=8, grpo_new_tokens=256,  # MiniMind's G, a GPU-sized rollout
    ppo_prompts=32, ppo_new_tokens=256)
QUICK = dict(
    train_configs=[("tiny", 32, 1)], train_batch=(2, 32),
    epoch_config=("tiny", 32, 1), sft_samples=8, sft_batch=4, sft_max_len=96,
    dpo_pairs=4, dpo_batch=2, dpo_max_len=128, dpo_step_batches=1,
    gen_config=("tiny", 32, 1), gen_prompt=8, gen_new=8, matmul_n=256, reps=5, scale_samples=200,
    distill_student=("tiny", 32, 1), distill_teacher=("tiny2", 64, 1), distill_batch=(2, 32), distill_mem_rounds=2,
    grpo_config=("tiny", 32, 1), grpo_prompts=2, grpo_generations=2, grpo_new_tokens=8,
    ppo_config=("tiny", 32, 1), ppo_prompts=4, ppo_new_tokens=8,
    length_scale=0.25)  # lengths scaled with the smaller max_seq_len, so the mix is not all truncated


def run(args, device, argv=None):
    """Every section of args.sections on device; args as scripts/bench.py parses them."""
    S = dict(QUICK if args.quick else (FULL_CUDA if device.type == "cuda" else FULL_CPU))
    if args.reps:
        S["reps"] = args.reps
    t_start = time.time()

    def log(msg):
        print(f"[{time.time() - t_start:7.1f}s] {msg}", file=sys.stderr, flush=True)

    results = {"meta": {
        **machine_info(device), "quick": args.quick, "reps": S["reps"],
        "loadavg_start": loadavg(), "argv": sys.argv[1:] if argv is None else argv,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "flops_per_token": "6*N + 12*n_layers*hidden*seq_len (N = unique parameters; attention not halved)",
        "settings": {k: v for k, v in S.items()}}}
    # initialise the allocator, thread pool and kernels once, so the first variant measured pays nothing extra
    warm, _ = build_pair(64, 1, device)
    Trainee(warm, device, plain_lm_loss).step(*(torch.randint(3, 100, (2, 16), device=device),) * 2,
                                             torch.ones(2, 16, dtype=torch.long, device=device))
    del warm

    with tempfile.TemporaryDirectory(prefix="minimind_bench_") as workdir:
        probe = None
        if "mfu" in args.sections:
            probe = MatmulPeak(S, device)
            for _ in range(S["reps"]):
                probe.sample()
            log(f"[mfu] {probe.n}^3 matmul: best {max(2 * probe.n ** 3 / t for t in probe.times) / 1e9:.1f} GFLOP/s")
        if "train" in args.sections:
            results["train"] = bench_train(S, device, args, log, probe)
        if probe is not None:
            results["mfu"] = probe.result()
            if "train" in results:
                add_mfu(results["train"], results["mfu"]["peak_flops_per_s"])
        if "sft" in args.sections:
            results["sft"] = bench_sft(S, device, args, log, workdir)
        if "dpo" in args.sections:
            results["dpo"] = bench_dpo(S, device, args, log, workdir)
        if "dpo_step" in args.sections:
            results["dpo_step"] = bench_dpo_step(S, device, args, log, workdir)
        if "distill" in args.sections:
            results["distill"] = bench_distill(S, device, args, log)
        if "grpo" in args.sections:
            results["grpo"] = bench_grpo(S, device, args, log, workdir)
        if "ppo" in args.sections:
            results["ppo"] = bench_ppo(S, device, args, log, workdir)
        if "gen" in args.sections:
            results["gen"] = bench_gen(S, device, args, log)
    results["targets"] = targets(results) + (grpo_targets(results["grpo"]) if "grpo" in results else [])
    results["meta"]["loadavg_end"] = loadavg()
    results["meta"]["wall_s"] = time.time() - t_start
    path = args.json or f"bench_{device.type}.json"
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    text = table(results)
    rl_blocks = (grpo_table(results["grpo"]) if "grpo" in results else "") + \
        (ppo_table(results["ppo"]) if "ppo" in results else "")
    if rl_blocks:  # their blocks go before the targets, as the other sections' do
        head, sep, tail = text.partition("\n[targets]")
        text = head + rl_blocks + sep + tail
    print(text)
    print(f"\nwrote {path}")
    return results
