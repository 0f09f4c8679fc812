"""Shared machinery of the benchmarks: timing, interleaving, summaries, peak memory, the machine.

Every comparison is measured side by side in one process: the variants of a section run in turn,
interleaved, for --reps repetitions (order rotated each repetition), after one untimed warm-up each.
A ratio is computed per repetition (variant A's and B's runs of the same round) and reported as the
median with min and max over the repetitions; a throughput is median (min, max). Raw times go into
the JSON, so every number can be recomputed from it.

Peak memory (each training variant, one untimed step or epoch measured on its own)
  CUDA: torch.cuda.max_memory_allocated() over the step, weights on the device included.
  CPU:  the bytes of what lives across steps (weights; in the train section also AdamW's state) + the
        growth of the process RSS over the step/epoch, sampled every 1 ms by a thread after
        malloc_trim(0) (so freed heap of earlier variants does not hide new allocations). Train section:
        a steady-state step (after the first, which compiles / allocates AdamW's state); epoch sections:
        the first epoch, so AdamW's state is in the growth. Gradients, activations and temporaries
        count; short spikes between samples can be missed; allocator slack is counted.
"""
import ctypes
import os
import platform
import statistics
import threading
import time

import torch


# ----------------------------------------------------------------------------------------------
# Timing

def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns, reps, device, warmup=True, log=None, each_round=None):
    """{name: [seconds per repetition]}: each round runs every variant once, order rotated per round.

    each_round() (if given) runs at the start of every round: the matmul-peak probe, so the peak is
    sampled under the same machine load as the variants.
    """
    names = list(fns)
    if warmup:
        for n in names:
            fns[n]()
    times = {n: [] for n in names}
    for r in range(reps):
        if each_round is not None:
            each_round()
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            sync(device)
            t0 = time.perf_counter()
            fns[n]()
            sync(device)
            times[n].append(time.perf_counter() - t0)
        if log:
            log(f"    round {r + 1}/{reps}: " + ", ".join(f"{n} {times[n][-1]:.3f}s" for n in names))
    return times


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def throughput(work, times):
    """work units per second for every repetition, and their summary."""
    per = [work / t for t in times]
    return {"per_rep": per, **summary(per)}


def ratio(num, den):
    """Paired per-repetition ratio of two per-rep throughput lists (same rounds)."""
    per = [a / b for a, b in zip(num, den)]
    return {"per_rep": per, **summary(per)}


# ----------------------------------------------------------------------------------------------
# Memory

_libc = None


def _malloc_trim():
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL("libc.so.6")
        _libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak training memory of the code run inside: see the module docstring for what is counted."""

    def __init__(self, device, static_bytes=0):
        self.device, self.static = device, static_bytes
        self.peak_bytes, self.method = None, None

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.method = "torch.cuda.max_memory_allocated"
            return self
        self.method = "weights + RSS growth sampled every 1 ms (/proc/self/statm, after malloc_trim)"
        _malloc_trim()
        self.base = self.peak_rss = _rss_bytes()
        self._stop = threading.Event()

        def sample():
            while not self._stop.is_set():
                self.peak_rss = max(self.peak_rss, _rss_bytes())
                time.sleep(0.001)
        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak_rss = max(self.peak_rss, _rss_bytes())
            self.peak_bytes = self.static + (self.peak_rss - self.base)
        return False

    def mb(self):
        return self.peak_bytes / 2 ** 20


def optimizer_bytes(opt):
    return sum(v.numel() * v.element_size() for st in opt.state.values() for v in st.values()
               if torch.is_tensor(v))


def param_bytes(model):
    seen, n = set(), 0
    for p in model.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            n += p.numel() * p.element_size()
    return n


# ----------------------------------------------------------------------------------------------
# The machine

def machine_info(device):
    """What the results were measured on: the head of the JSON's "meta"."""
    import transformers
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else
        f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
        "dtype": "bfloat16 autocast (train), bfloat16 (generate)" if device.type == "cuda" else "float32",
        "torch": torch.__version__, "transformers": transformers.__version__,
        "threads": torch.get_num_threads()}


def loadavg():
    return "%.1f %.1f %.1f" % os.getloadavg()
