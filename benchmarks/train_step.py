"""Section train: one training step (forward + backward + grad clip + AdamW) on full rows of random
tokens, MiniMindForCausalLM vs transformers.LlamaForCausalLM holding the same state_dict (loaded strict),
same dtype (float32 on CPU, bfloat16 autocast on CUDA, as the trainer), both scored by
trainer.losses.masked_ce; plus ours with trainer/fused_loss.py (and torch.compile with --compile), and
both through transformers' labels= path. Peak memory per variant."""
import copy
import time

import torch

from benchmarks.harness import PeakMemory, interleaved, optimizer_bytes, param_bytes, ratio, throughput
from benchmarks.mfu import flops_per_token, n_params
from benchmarks.models import Trainee, build_pair, fused_lm_loss, labels_lm_loss, plain_lm_loss


def bench_train(S, device, args, log, probe=None):
    B, T = S["train_batch"]
    out = []
    for name, hidden, layers in S["train_configs"]:
        log(f"[train] {name} ({hidden} x {layers}), batch {B} x {T}")
        ours, llama = build_pair(hidden, layers, device)
        g = torch.Generator().manual_seed(1)
        X = torch.randint(3, ours.config.vocab_size, (B, T), generator=g).to(device)
        Y = torch.randint(3, ours.config.vocab_size, (B, T), generator=g).to(device)
        M = torch.ones(B, T, dtype=torch.long, device=device)
        variants = {
            "minimind": lambda: Trainee(copy.deepcopy(ours), device, plain_lm_loss),
            "llama": lambda: Trainee(llama, device, plain_lm_loss),
            "minimind+fused_loss": lambda: Trainee(copy.deepcopy(ours), device, fused_lm_loss),
            "minimind:labels": lambda: Trainee(copy.deepcopy(ours), device, labels_lm_loss),
            "llama:labels": lambda: Trainee(copy.deepcopy(llama), device, labels_lm_loss),
        }
        if args.compile:
            def compiled():
                m = copy.deepcopy(ours)
                t = Trainee(m, device, plain_lm_loss)
                t.model = torch.compile(m)
                return t
            variants["minimind+compile"] = compiled
        trainees, mem, compile_s = {}, {}, {}
        for v, make in variants.items():
            t = make()
            trainees[v] = t
            t0 = time.perf_counter()
            t.step(X, Y, M)  # first step: compiles, allocates AdamW's state
            if v.endswith("compile"):
                compile_s[v] = time.perf_counter() - t0
            # a steady-state step: its growth is gradients, activations, temporaries
            with PeakMemory(device, param_bytes(t.model) + optimizer_bytes(t.opt)) as pm:
                t.step(X, Y, M)
            mem[v] = pm
        rounds = []
        times = interleaved({v: (lambda t=t: t.step(X, Y, M)) for v, t in trainees.items()},
                            S["reps"], device, log=log,
                            each_round=(lambda: rounds.append(probe.sample())) if probe else None)
        fpt = flops_per_token(ours, T)
        res = {"config": name, "hidden_size": hidden, "num_hidden_layers": layers, "params": n_params(ours),
               "batch": B, "seq_len": T, "tokens_per_step": B * T, "flops_per_token": fpt,
               "dtype": "bfloat16 autocast" if device.type == "cuda" else "float32", "variants": {}}
        if rounds:
            res["matmul_flops_per_round"] = rounds
        for v in trainees:
            res["variants"][v] = {
                "times_s": times[v], "tokens_per_s": throughput(B * T, times[v]),
                "peak_mem_mb": mem[v].mb(), "peak_mem_method": mem[v].method}
            if v in compile_s:
                res["variants"][v]["first_step_incl_compile_s"] = compile_s[v]
        tps = {v: res["variants"][v]["tokens_per_s"]["per_rep"] for v in trainees}
        # each of ours against Llama computing the same loss the same way
        res["ratios"] = {f"{v}/llama": ratio(tps[v], tps["llama"]) for v in trainees if ":" not in v and v != "llama"}
        res["ratios"]["minimind:labels/llama:labels"] = ratio(tps["minimind:labels"], tps["llama:labels"])
        res["ratios"]["minimind+fused_loss/minimind"] = ratio(tps["minimind+fused_loss"], tps["minimind"])
        out.append(res)
        del trainees, ours, llama
    return out
