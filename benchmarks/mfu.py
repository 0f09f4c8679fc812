"""Section mfu: the machine's matmul peak (float32 2048^3 on CPU, bfloat16 8192^3 on CUDA; best of the
runs) and each train variant's model FLOP/s against it. FLOPs per trained token =
    6 * N + 12 * n_layers * hidden * T   (N = all unique parameters, the tied embedding/LM head
    counted once; the second term is attention scores and values, forward + backward, over the
    T = sequence length positions, not halved for causality: PaLM's convention).
"""
import time

import torch

from benchmarks.harness import summary, sync


def n_params(model):
    seen, n = set(), 0
    for p in model.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            n += p.numel()
    return n


def flops_per_token(model, seq_len):
    c = model.config
    return 6 * n_params(model) + 12 * c.num_hidden_layers * c.hidden_size * seq_len


# ----------------------------------------------------------------------------------------------
# The matmul peak and MFU

class MatmulPeak:
    """The machine's matmul throughput: float32 n^3 on CPU, bfloat16 on CUDA. Sampled at the start and
    once per round of the train section; the peak is the best sample of the whole run."""

    def __init__(self, S, device):
        self.n, self.device = S["matmul_n"], device
        self.dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        self.a = torch.randn(self.n, self.n, device=device, dtype=self.dtype)
        self.b = torch.randn(self.n, self.n, device=device, dtype=self.dtype)
        self.times = []

    def sample(self, k=2):
        """Best of k back-to-back runs (returns its FLOP/s)."""
        best = None
        for _ in range(k):
            sync(self.device)
            t0 = time.perf_counter()
            self.a @ self.b
            sync(self.device)
            t = time.perf_counter() - t0
            best = t if best is None else min(best, t)
        self.times.append(best)
        return 2 * self.n ** 3 / best

    def result(self):
        per = [2 * self.n ** 3 / t for t in self.times]
        return {"n": self.n, "dtype": str(self.dtype).replace("torch.", ""), "times_s": self.times,
                "flops_per_s": {"per_rep": per, **summary(per)}, "peak_flops_per_s": max(per)}


def add_mfu(train, peak):
    """MFU against the run's best matmul sample, and against the sample taken in the same round
    (which cancels most of the load other processes put on a shared machine)."""
    for res in train:
        rounds = res.get("matmul_flops_per_round")
        for v, r in res["variants"].items():
            achieved = [res["flops_per_token"] * x for x in r["tokens_per_s"]["per_rep"]]
            r["model_flops_per_s"] = summary(achieved)
            r["mfu"] = summary([x / peak for x in achieved])
            if rounds:
                r["mfu_same_round"] = summary([x / p for x, p in zip(achieved, rounds)])
