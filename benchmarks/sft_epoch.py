"""Section sft: effective (non-padding) tokens/s of one SFT epoch over a generated chat-like JSONL (real
SFTDataset): MiniMind's batching and loss (every sample padded to max_seq_len, random order,
cross-entropy over the full logits) vs the project's (LengthGroupedBatchSampler + pad_collate, i.e. pad
to the batch's longest of a length-sorted megabatch, and the trainer's own LMStage.loss); plus the
project with the fused loss explicitly."""
import copy
import os

from benchmarks.batching import EpochRunner, _epoch_result, minimind_batches, pad_to, padding_at_scale, project_batches
from benchmarks.chat_data import SFT_LENGTHS, _tokenizer, length_stats, write_sft_jsonl
from benchmarks.harness import PeakMemory, interleaved, param_bytes, ratio
from benchmarks.models import Trainee, build_pair, fused_lm_loss, plain_lm_loss


def bench_sft(S, device, args, log, workdir):
    from dataset.lm_dataset import SFTDataset, pad_collate
    from trainer.stages import LMStage
    tok = _tokenizer()
    path = os.path.join(workdir, "sft_bench.jsonl")
    write_sft_jsonl(path, tok, S["sft_samples"], scale=S.get("length_scale", 1.0))
    L, B = S["sft_max_len"], S["sft_batch"]
    ds = SFTDataset(path, tok, max_length=L, cache_dir=os.path.join(workdir, "cache"), verbose=False)
    big = os.path.join(workdir, "sft_scale.jsonl")
    write_sft_jsonl(big, tok, S["scale_samples"], seed=1, scale=S.get("length_scale", 1.0))
    at_scale = padding_at_scale(SFTDataset(big, tok, max_length=L, cache_dir=os.path.join(workdir, "cache"),
                                           verbose=False), B, 1)
    name, hidden, layers = S["epoch_config"]
    log(f"[sft] {len(ds)} samples, max_seq_len {L}, batch {B}, model {name} ({hidden} x {layers})")
    ours, _ = build_pair(hidden, layers, device)
    pad = tok.pad_token_id
    stage = LMStage("sft", "SFT")
    # MiniMind's loss: cross-entropy over the full logits; the project's: the trainer's own LMStage.loss
    plain = Trainee(copy.deepcopy(ours), device, lambda m, b: plain_lm_loss(m, *b))
    project = Trainee(copy.deepcopy(ours), device, lambda m, b: stage.loss(m, b)[0])
    fused = Trainee(copy.deepcopy(ours), device, lambda m, b: fused_lm_loss(m, *b))
    runners = {
        "minimind_batching": EpochRunner(ds, lambda e: minimind_batches(len(ds), B, e),
                                         pad_to(L - 1, pad, pad_collate(pad)), plain.step, device),
        "project": EpochRunner(ds, lambda e: project_batches(ds.lengths, B, e), pad_collate(pad),
                               project.step, device),
        "project+fused_loss": EpochRunner(ds, lambda e: project_batches(ds.lengths, B, e), pad_collate(pad),
                                          fused.step, device),
    }
    mem = {}
    for v, r in runners.items():  # warm-up epoch of each, with its memory measured
        t = {"minimind_batching": plain, "project": project, "project+fused_loss": fused}[v]
        with PeakMemory(device, param_bytes(t.model)) as pm:
            r()
        mem[v] = pm
    times = interleaved(runners, S["reps"], device, warmup=False, log=log)
    res = {"samples": len(ds), "max_seq_len": L, "batch_size": B, "model": name,
           "hidden_size": hidden, "num_hidden_layers": layers,
           "length_mix": {"spec": SFT_LENGTHS, "scale": S.get("length_scale", 1.0),
                          "tokens": length_stats(ds.lengths + 1, L),
                          "truncated": int(ds.num_truncated)},
           "padding_at_scale": at_scale,
           "variants": _epoch_result(runners, times, mem)}
    eff = {v: res["variants"][v]["effective_tokens_per_s"]["per_rep"] for v in runners}
    res["ratios"] = {"project/minimind_batching": ratio(eff["project"], eff["minimind_batching"]),
                     "project+fused_loss/minimind_batching": ratio(eff["project+fused_loss"],
                                                                   eff["minimind_batching"])}
    return res
