"""Padding and length grouping, the seam the epoch sections measure: MiniMind's batching (random order,
every sample padded to max_seq_len) against the project's (LengthGroupedBatchSampler, padded to the
batch's longest), what each pads over a whole data set, and an epoch of either through a trainee."""
import numpy as np
import torch

from benchmarks.harness import summary


def padding_at_scale(ds, batch_size, sides):
    """Padding of each batching over a whole (larger) data set of the same mix: counted, not timed.

    The timed epochs use a few dozen samples, so their length-sorted batches are coarser than a real
    run's (the sampler sorts megabatches of 64 batches); this shows what the two batchings pad at scale.
    """
    real = 0
    for i in range(len(ds)):
        it = ds[i]
        real += len(it["x_chosen"]) + len(it["x_rejected"]) if isinstance(it, dict) else len(it[0])
    lengths = np.asarray(ds.lengths)
    project = sum(len(b) * int(lengths[b].max()) for b in project_batches(lengths, batch_size, 0)) * sides
    minimind = len(ds) * (ds.max_length - 1) * sides
    return {"samples": len(ds), "real_tokens": int(real), "project_padded_tokens": int(project),
            "minimind_padded_tokens": int(minimind), "project_pad_fraction": 1 - real / project,
            "minimind_pad_fraction": 1 - real / minimind, "padded_token_ratio": minimind / project}


def pad_to(T, pad_id, collate):
    """MiniMind's batching: every sample padded to the full max_seq_len (its X/Y are max_len - 1 long)."""
    def padded(items):
        b = collate(items)
        if isinstance(b, dict):
            out = {}
            for k, v in b.items():
                if k == "index":
                    out[k] = v
                    continue
                fill = 0 if k.startswith("mask") else pad_id
                out[k] = torch.cat([v, v.new_full((v.shape[0], T - v.shape[1]), fill)], 1)
            return out
        X, Y, M = b
        extra = T - X.shape[1]
        return (torch.cat([X, X.new_full((X.shape[0], extra), pad_id)], 1),
                torch.cat([Y, Y.new_full((Y.shape[0], extra), pad_id)], 1),
                torch.cat([M, M.new_zeros((M.shape[0], extra))], 1))
    return padded


def minimind_batches(n, batch_size, epoch):
    """Random order, fixed-size batches (MiniMind shuffles only under DDP; order does not change cost)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(epoch)).tolist()
    return [perm[i:i + batch_size] for i in range(0, n, batch_size)]


def project_batches(lengths, batch_size, epoch):
    from trainer.sampler import LengthGroupedBatchSampler
    s = LengthGroupedBatchSampler(lengths, batch_size, seed=0)
    s.set_epoch(epoch)
    return list(s)


class EpochRunner:
    """One epoch = every batch of a data set through one variant's trainee; counts real tokens."""

    def __init__(self, ds, batches_fn, collate, step_fn, device):
        self.ds, self.batches_fn, self.collate, self.step_fn, self.device = ds, batches_fn, collate, step_fn, device
        self.epoch = 0
        self.real, self.padded, self.steps = [], [], []

    def __call__(self):
        real = padded = 0
        batches = self.batches_fn(self.epoch)
        for idx in batches:
            items = [self.ds[i] for i in idx]
            if isinstance(items[0], dict):
                real += sum(len(d["x_chosen"]) + len(d["x_rejected"]) for d in items)
            else:
                real += sum(len(it[0]) for it in items)
            b = self.collate(items)
            padded += (b["x_chosen"].numel() + b["x_rejected"].numel()) if isinstance(b, dict) else b[0].numel()
            b = {k: v.to(self.device) for k, v in b.items()} if isinstance(b, dict) else tuple(
                t.to(self.device) for t in b)
            self.step_fn(b)
        self.real.append(real)
        self.padded.append(padded)
        self.steps.append(len(batches))
        self.epoch += 1


def _epoch_result(runners, times, mem):
    res = {}
    for v, r in runners.items():
        # the warm-up epoch ran first: the timed ones are the last len(times[v])
        real = r.real[-len(times[v]):]
        padded = r.padded[-len(times[v]):]
        per = [a / t for a, t in zip(real, times[v])]
        res[v] = {"times_s": times[v], "real_tokens": real, "padded_tokens": padded,
                  "steps_per_epoch": r.steps[-1],
                  "pad_fraction": 1 - sum(real) / sum(padded),
                  "effective_tokens_per_s": {"per_rep": per, **summary(per)},
                  "peak_mem_mb": mem[v].mb(), "peak_mem_method": mem[v].method}
    return res
