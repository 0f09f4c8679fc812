"""Section dpo: effective tokens/s of one DPO epoch (real DPODataset): MiniMind's (pad both sides to
max_seq_len, reference model forward every step, log-probs from full logits) vs the project's
(length-grouped dpo_collate batches, reference log-probs computed once by
trainer.stages.dpo.compute_reference_logps -- its time is included in the epoch -- then
trainer.stages.dpo.DPOStage.loss); plus the project with the fused loss explicitly.

Also the DPO pieces the dpo_step section shares: the data set and model, the on-the-fly and cached
losses, the reference pass and the policy log-probs (plain and fused)."""
import copy
import os
import time

import torch

from benchmarks.batching import EpochRunner, _epoch_result, minimind_batches, pad_to, padding_at_scale, project_batches
from benchmarks.chat_data import DPO_LENGTHS, _tokenizer, length_stats, write_dpo_jsonl
from benchmarks.harness import PeakMemory, interleaved, param_bytes, ratio, sync
from benchmarks.models import Trainee, autocast_ctx, build_pair


def plain_policy_logps(model, batch):
    """Summed response log-probs from the full logits (MiniMind's way of scoring, summed as TRL does)."""
    from trainer.losses import sequence_logps
    x = torch.cat([batch["x_chosen"], batch["x_rejected"]])
    y = torch.cat([batch["y_chosen"], batch["y_rejected"]])
    m = torch.cat([batch["mask_chosen"], batch["mask_rejected"]])
    out = model(x)
    pc, pr = sequence_logps(out.logits, y, m).chunk(2)
    return pc, pr, out


def fused_policy_logps(model, batch):
    """trainer.stages.dpo.policy_logps through the fused loss: same (pc, pr, out) contract."""
    from types import SimpleNamespace

    from trainer.fused_loss import fused_sequence_logps
    x = torch.cat([batch["x_chosen"], batch["x_rejected"]])
    y = torch.cat([batch["y_chosen"], batch["y_rejected"]])
    m = torch.cat([batch["mask_chosen"], batch["mask_rejected"]])
    hidden, aux = model.model(x)
    pc, pr = fused_sequence_logps(hidden, model.lm_head.weight, y, m).chunk(2)
    return pc, pr, SimpleNamespace(aux_loss=aux)



def _dpo_setup(S, device, workdir):
    from dataset.lm_dataset import DPODataset
    tok = _tokenizer()
    path = os.path.join(workdir, "dpo_bench.jsonl")
    write_dpo_jsonl(path, tok, S["dpo_pairs"], scale=S.get("length_scale", 1.0))
    ds = DPODataset(path, tok, max_length=S["dpo_max_len"], cache_dir=os.path.join(workdir, "cache"),
                    verbose=False)
    name, hidden, layers = S["epoch_config"]
    ours, _ = build_pair(hidden, layers, device)
    return tok, ds, ours


def _dpo_at_scale(S, tok, workdir):
    from dataset.lm_dataset import DPODataset
    big = os.path.join(workdir, "dpo_scale.jsonl")
    write_dpo_jsonl(big, tok, S["scale_samples"], seed=1, scale=S.get("length_scale", 1.0))
    ds = DPODataset(big, tok, max_length=S["dpo_max_len"], cache_dir=os.path.join(workdir, "cache"),
                    verbose=False)
    return padding_at_scale(ds, S["dpo_batch"], 2)


def dpo_on_the_fly_loss(ref_model, beta=0.1, logps=None):
    """MiniMind's way: the frozen reference scores every batch again, each step."""
    from trainer.stages.dpo import policy_logps
    from trainer.losses import dpo_loss
    logps = logps or policy_logps

    def loss(model, batch):
        with torch.no_grad():
            rc, rr, _ = logps(ref_model, batch)
        pc, pr, out = logps(model, batch)
        losses, _ = dpo_loss(pc, pr, rc, rr, beta)
        return losses.mean() + out.aux_loss
    return loss


def cached_stage(beta=0.1):
    from trainer.stages.dpo import DPOStage
    st = DPOStage(beta)
    return st, (lambda m, b: st.loss(m, b)[0])


def reference_pass(model, ds, collate, device, batch_size, fused):
    """trainer.stages.dpo.compute_reference_logps (its own code; routed through the fused log-probs if asked)."""
    import trainer.stages.dpo as tdpo
    saved = tdpo.policy_logps
    if fused:
        tdpo.policy_logps = fused_policy_logps
    try:
        return tdpo.compute_reference_logps(model, ds, collate, device, batch_size,
                                            lambda: autocast_ctx(device), log=lambda *a: None)
    finally:
        tdpo.policy_logps = saved


def bench_dpo(S, device, args, log, workdir):
    from dataset.lm_dataset import dpo_collate
    tok, ds, ours = _dpo_setup(S, device, workdir)
    L, B = S["dpo_max_len"], S["dpo_batch"]
    name, hidden, layers = S["epoch_config"]
    log(f"[dpo] {len(ds)} pairs, max_seq_len {L}, batch {B} pairs, model {name} ({hidden} x {layers})")
    pad = tok.pad_token_id
    ref_model = copy.deepcopy(ours).eval().requires_grad_(False)
    mm = Trainee(copy.deepcopy(ours), device, dpo_on_the_fly_loss(ref_model, logps=plain_policy_logps))
    stages, trainees = {}, {"minimind_batching": mm}
    for v, fused in (("project", False), ("project+fused_loss", True)):
        st, lossf = cached_stage()
        if fused:
            def lossf(m, b, st=st):
                import trainer.stages.dpo as tdpo
                saved = tdpo.policy_logps
                tdpo.policy_logps = fused_policy_logps
                try:
                    return st.loss(m, b)[0]
                finally:
                    tdpo.policy_logps = saved
        stages[v] = (st, fused)
        trainees[v] = Trainee(copy.deepcopy(ours), device, lossf)

    ref_times = {v: [] for v in stages}

    def project_epoch(v, runner):
        st, fused = stages[v]

        def run():
            # the one-time reference pass is part of this epoch's cost (a 1-epoch run pays it in full)
            t0 = time.perf_counter()
            st.ref = reference_pass(trainees[v].model, ds, dpo_collate(pad), device, B, fused)
            sync(device)
            ref_times[v].append(time.perf_counter() - t0)
            runner()
        return run

    runners = {"minimind_batching": EpochRunner(ds, lambda e: minimind_batches(len(ds), B, e),
                                                pad_to(L - 1, pad, dpo_collate(pad)), mm.step, device)}
    fns = {"minimind_batching": runners["minimind_batching"]}
    for v in stages:
        runners[v] = EpochRunner(ds, lambda e: project_batches(ds.lengths, B, e), dpo_collate(pad),
                                 trainees[v].step, device)
        fns[v] = project_epoch(v, runners[v])
    mem = {}
    for v in fns:
        with PeakMemory(device, param_bytes(trainees[v].model) + (param_bytes(ref_model) if v == "minimind_batching"
                                                                   else 0)) as pm:
            fns[v]()
        mem[v] = pm
    times = interleaved(fns, S["reps"], device, warmup=False, log=log)
    res = {"pairs": len(ds), "max_seq_len": L, "batch_size_pairs": B, "model": name,
           "hidden_size": hidden, "num_hidden_layers": layers,
           "length_mix": {"spec": DPO_LENGTHS, "scale": S.get("length_scale", 1.0),
                          "tokens_longer_side": length_stats(ds.lengths + 1, L),
                          "truncated": int(ds.num_truncated)},
           "padding_at_scale": _dpo_at_scale(S, tok, workdir),
           "variants": _epoch_result(runners, times, mem)}
    for v in stages:
        res["variants"][v]["reference_pass_s"] = ref_times[v][-S["reps"]:]
        res["variants"][v]["note"] = "epoch time includes the one-time reference log-prob pass"
    res["variants"]["minimind_batching"]["note"] = "reference model forward every step; both models in memory"
    eff = {v: res["variants"][v]["effective_tokens_per_s"]["per_rep"] for v in runners}
    res["ratios"] = {"project/minimind_batching": ratio(eff["project"], eff["minimind_batching"]),
                     "project+fused_loss/minimind_batching": ratio(eff["project+fused_loss"],
                                                                   eff["minimind_batching"])}
    return res
