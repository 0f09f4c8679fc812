"""Section dpo_step: one DPO step on the same length-grouped batches: reference forward on the fly vs
cached (trainer.stages.dpo.compute_reference_logps once, then DPOStage.loss)."""
import copy

from benchmarks.batching import project_batches
from benchmarks.dpo_epoch import _dpo_setup, cached_stage, dpo_on_the_fly_loss, reference_pass
from benchmarks.harness import PeakMemory, interleaved, param_bytes, ratio, summary
from benchmarks.models import Trainee


def bench_dpo_step(S, device, args, log, workdir):
    from dataset.lm_dataset import dpo_collate
    tok, ds, ours = _dpo_setup(S, device, workdir)
    B = S["dpo_batch"]
    pad = tok.pad_token_id
    collate = dpo_collate(pad)
    idx = project_batches(ds.lengths, B, 0)[:S["dpo_step_batches"]]
    batches = [{k: v.to(device) for k, v in collate([ds[i] for i in b]).items()} for b in idx]
    log(f"[dpo_step] {len(batches)} length-grouped batches of {B} pairs")
    ref_model = copy.deepcopy(ours).eval().requires_grad_(False)
    fly = Trainee(copy.deepcopy(ours), device, dpo_on_the_fly_loss(ref_model))
    st, lossf = cached_stage()
    cached = Trainee(copy.deepcopy(ours), device, lossf)
    st.ref = reference_pass(cached.model, ds, collate, device, B, fused=False)
    fns = {"on_the_fly": lambda: [fly.step(b) for b in batches],
           "cached": lambda: [cached.step(b) for b in batches]}
    mem = {}
    for v, t in (("on_the_fly", fly), ("cached", cached)):
        extra = param_bytes(ref_model) if v == "on_the_fly" else 0
        with PeakMemory(device, param_bytes(t.model) + extra) as pm:
            fns[v]()
        mem[v] = pm
    times = interleaved(fns, S["reps"], device, warmup=False, log=log)
    n = len(batches)
    res = {"batches": n, "batch_size_pairs": B, "variants": {}}
    for v in fns:
        per_step = [t / n for t in times[v]]
        res["variants"][v] = {"times_s": times[v], "step_s": {"per_rep": per_step, **summary(per_step)},
                              "peak_mem_mb": mem[v].mb(), "peak_mem_method": mem[v].method}
    # speed-up = on-the-fly time / cached time, paired per round
    res["ratios"] = {"cached_speedup": ratio(times["on_the_fly"], times["cached"])}
    return res
