"""Section distill: one distillation step (student forward + backward + AdamW, frozen teacher forward;
alpha 0, T 1, every position a target): MiniMind's (both models' full (B, T, V) logits, KL and CE over
them) vs the trainer's DistillStage (hidden states, KL chunked over target rows); step time and peak
memory (several rounds, alternating order), the teacher's weights counted in both. The memory floor:
the student's plain SFT step (fused CE) with the teacher's weights resident."""
import copy

import torch

from benchmarks.harness import PeakMemory, interleaved, optimizer_bytes, param_bytes, ratio, summary, throughput
from benchmarks.models import Trainee, build_pair, fused_lm_loss


def plain_distill_step_loss(teacher):
    """MiniMind's train_distillation.py: both models' full (B, T, V) logits, KL and CE over them."""
    from trainer.stages.distill import plain_distill_loss

    def loss(model, X, Y, M):
        with torch.no_grad():
            zt = teacher(X).logits
        return plain_distill_loss(model(X).logits, zt, Y, M, 0.0, 1.0)[0]
    return loss


def fused_distill_step_loss(teacher):
    """The project's: trainer.stages.distill.DistillStage.loss (hidden states, chunked KL on target rows)."""
    from trainer.stages.distill import DistillStage, Teacher
    stage = DistillStage(Teacher(teacher, "bench", {}), 0.0, 1.0)
    return lambda model, X, Y, M: stage.loss(model, (X, Y, M))[0]


def bench_distill(S, device, args, log):
    (_, sh, sl), (_, th, tl) = S["distill_student"], S["distill_teacher"]
    B, T = S["distill_batch"]
    log(f"[distill] student {sh} x {sl}, teacher {th} x {tl}, batch {B} x {T}, alpha 0, T 1, every position a target")
    student, _ = build_pair(sh, sl, device, seed=0)
    teacher, _ = build_pair(th, tl, device, seed=1)
    teacher.eval().requires_grad_(False)
    g = torch.Generator().manual_seed(3)
    X = torch.randint(3, student.config.vocab_size, (B, T), generator=g).to(device)
    Y = torch.randint(3, student.config.vocab_size, (B, T), generator=g).to(device)
    M = torch.ones(B, T, dtype=torch.long, device=device)
    trainees = {"plain": Trainee(copy.deepcopy(student), device, plain_distill_step_loss(teacher)),
                "fused": Trainee(copy.deepcopy(student), device, fused_distill_step_loss(teacher))}
    # the floor no distillation loss can go under: the student's own SFT step (the trainer's fused CE),
    # with the teacher's weights resident; memory only
    floor = Trainee(copy.deepcopy(student), device, fused_lm_loss)
    for t in (*trainees.values(), floor):
        t.step(X, Y, M)  # first step: allocates AdamW's state
    # steady-state peak memory, S["distill_mem_rounds"] rounds, order alternating
    mem = {v: [] for v in (*trainees, "floor")}
    method = None
    for r in range(S["distill_mem_rounds"]):
        for v in (list(mem) if r % 2 == 0 else list(mem)[::-1]):
            t = trainees.get(v, floor)
            with PeakMemory(device, param_bytes(t.model) + optimizer_bytes(t.opt) + param_bytes(teacher)) as pm:
                t.step(X, Y, M)
            mem[v].append(pm.mb())
            method = pm.method
    del floor
    times = interleaved({v: (lambda t=t: t.step(X, Y, M)) for v, t in trainees.items()}, S["reps"], device,
                        warmup=False, log=log)
    res = {"student": [sh, sl], "teacher": [th, tl], "batch": B, "seq_len": T, "alpha": 0.0, "temperature": 1.0,
           "dtype": "bfloat16 autocast" if device.type == "cuda" else "float32", "peak_mem_method": method,
           "variants": {}}
    for v in trainees:
        res["variants"][v] = {"times_s": times[v], "step_s": summary(times[v]),
                              "tokens_per_s": throughput(B * T, times[v]),
                              "peak_mem_mb": {"per_rep": mem[v], **summary(mem[v])}}
    res["floor_peak_mem_mb"] = {"per_rep": mem["floor"], **summary(mem["floor"]),
                                "what": "the student's SFT step alone (fused CE) + the teacher's weights"}
    res["ratios"] = {"time fused/plain": ratio(times["fused"], times["plain"]),
                     "peak memory fused/plain": ratio(mem["fused"], mem["plain"]),
                     "peak memory floor/plain": ratio(mem["floor"], mem["plain"])}
    return res
