"""Throughput benchmark: this project against transformers' Llama and against MiniMind's batching.

    python scripts/bench.py                      # full run (CPU: ~20-40 min on 2 cores; CUDA: minutes)
    python scripts/bench.py --quick              # tiny sizes, < 1 min: checks the machinery, not speed
    python scripts/bench.py --compile            # also torch.compile'd variants (compile time reported apart)
    python scripts/bench.py --json bench.json --sections train,gen

Every comparison is measured side by side in one process: the variants of a section run in turn,
interleaved, for --reps repetitions (order rotated each repetition), after one untimed warm-up each.
A ratio is computed per repetition (variant A's and B's runs of the same round) and reported as the
median with min and max over the repetitions; a throughput is median (min, max). Raw times go into
the JSON, so every number can be recomputed from it.

Sections
  train  one training step (forward + backward + grad clip + AdamW) on full rows of random tokens,
         MiniMindForCausalLM vs transformers.LlamaForCausalLM holding the same state_dict (loaded
         strict), same dtype (float32 on CPU, bfloat16 autocast on CUDA, as the trainer), both scored
         by trainer.losses.masked_ce; plus ours with trainer/fused_loss.py (and torch.compile with
         --compile). Peak memory per variant.
  sft    effective (non-padding) tokens/s of one SFT epoch over a generated chat-like JSONL (real
         SFTDataset): MiniMind's batching and loss (every sample padded to max_seq_len, random order,
         cross-entropy over the full logits) vs the project's (LengthGroupedBatchSampler + pad_collate,
         i.e. pad to the batch's longest of a length-sorted megabatch, and the trainer's own
         LMStage.loss); plus the project with the fused loss explicitly.
  dpo    the same for one DPO epoch (real DPODataset): MiniMind's (pad both sides to max_seq_len,
         reference model forward every step, log-probs from full logits) vs the project's
         (length-grouped dpo_collate batches, reference log-probs computed once by
         trainer.dpo.compute_reference_logps -- its time is included in the epoch -- then
         trainer.dpo.DPOStage.loss); plus the project with the fused loss explicitly.
  dpo_step  one DPO step on the same length-grouped batches: reference forward on the fly vs cached.
  distill  one distillation step (student forward + backward + AdamW, frozen teacher forward; alpha 0, T 1,
         every position a target): MiniMind's (both models' full (B, T, V) logits, KL and CE over them) vs
         the trainer's DistillStage (hidden states, KL chunked over target rows); step time and peak
         memory (several rounds, alternating order), the teacher's weights counted in both. The memory
         floor: the student's plain SFT step (fused CE) with the teacher's weights resident.
  gen    greedy generate() with the KV cache, ours vs Llama, same weights: new tokens/s (and whether
         both produced the same tokens).
  mfu    the machine's matmul peak (float32 2048^3 on CPU, bfloat16 8192^3 on CUDA; best of the runs)
         and each train variant's model FLOP/s against it. FLOPs per trained token =
         6 * N + 12 * n_layers * hidden * T   (N = all unique parameters, the tied embedding/LM head
         counted once; the second term is attention scores and values, forward + backward, over the
         T = sequence length positions, not halved for causality: PaLM's convention).

Peak memory (each training variant, one untimed step or epoch measured on its own)
  CUDA: torch.cuda.max_memory_allocated() over the step, weights on the device included.
  CPU:  the bytes of what lives across steps (weights; in the train section also AdamW's state) + the
        growth of the process RSS over the step/epoch, sampled every 1 ms by a thread after
        malloc_trim(0) (so freed heap of earlier variants does not hide new allocations). Train section:
        a steady-state step (after the first, which compiles / allocates AdamW's state); epoch sections:
        the first epoch, so AdamW's state is in the growth. Gradients, activations and temporaries
        count; short spikes between samples can be missed; allocator slack is counted.
"""
import copy
import ctypes
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

SECTIONS = ("train", "sft", "dpo", "dpo_step", "distill", "gen", "mfu")

# ----------------------------------------------------------------------------------------------
# Settings: full and --quick, CPU and CUDA

FULL_CPU = dict(
    train_configs=[("26M", 512, 8), ("small", 256, 4)], train_batch=(2, 512),
    epoch_config=("small", 256, 4), sft_samples=32, sft_batch=8, sft_max_len=512,
    dpo_pairs=8, dpo_batch=4, dpo_max_len=1024, dpo_step_batches=2,
    gen_config=("26M", 512, 8), gen_prompt=32, gen_new=128, matmul_n=2048, reps=5, scale_samples=4000,
    distill_student=("26M", 512, 8), distill_teacher=("104M", 768, 16), distill_batch=(4, 512), distill_mem_rounds=3)
FULL_CUDA = dict(
    train_configs=[("26M", 512, 8), ("104M", 768, 16)], train_batch=(32, 512),
    epoch_config=("26M", 512, 8), sft_samples=1024, sft_batch=32, sft_max_len=512,
    dpo_pairs=256, dpo_batch=8, dpo_max_len=3000, dpo_step_batches=4,
    gen_config=("26M", 512, 8), gen_prompt=32, gen_new=256, matmul_n=8192, reps=5, scale_samples=4000,
    distill_student=("26M", 512, 8), distill_teacher=("104M", 768, 16), distill_batch=(4, 512), distill_mem_rounds=3)
QUICK = dict(
    train_configs=[("tiny", 32, 1)], train_batch=(2, 32),
    epoch_config=("tiny", 32, 1), sft_samples=8, sft_batch=4, sft_max_len=96,
    dpo_pairs=4, dpo_batch=2, dpo_max_len=128, dpo_step_batches=1,
    gen_config=("tiny", 32, 1), gen_prompt=8, gen_new=8, matmul_n=256, reps=5, scale_samples=200,
    distill_student=("tiny", 32, 1), distill_teacher=("tiny2", 64, 1), distill_batch=(2, 32), distill_mem_rounds=2,
    length_scale=0.25)  # lengths scaled with the smaller max_seq_len, so the mix is not all truncated

# Chat-like lengths in tokens (lognormal: median, sigma). Most conversations are far shorter than
# max_seq_len, with a long tail that gets truncated; the numbers are stated in the JSON.
SFT_LENGTHS = dict(turns=(0.7, 0.2, 0.1), user=(30, 0.8), assistant=(90, 0.9))
DPO_LENGTHS = dict(prompt=(40, 0.8), chosen=(150, 0.8), rejected=(120, 0.9))


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
# Models

def minimind_config(hidden, layers):
    from model import MiniMindConfig
    heads = 8 if hidden >= 128 else 4
    return MiniMindConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                          num_key_value_heads=2)


def build_pair(hidden, layers, device, seed=0):
    """(ours, Llama) with identical weights: Llama loads our state_dict strictly."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from model import MiniMindForCausalLM
    cfg = minimind_config(hidden, layers)
    torch.manual_seed(seed)
    ours = MiniMindForCausalLM(cfg)
    llama_cfg = LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, max_position_embeddings=cfg.max_position_embeddings,
        rms_norm_eps=cfg.rms_norm_eps, rope_theta=cfg.rope_theta, tie_word_embeddings=True,
        attention_bias=False, mlp_bias=False, hidden_act="silu",
        bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id, pad_token_id=cfg.pad_token_id)
    llama = LlamaForCausalLM(llama_cfg)
    llama.load_state_dict(ours.state_dict(), strict=True)
    if llama.lm_head.weight.data_ptr() != llama.model.embed_tokens.weight.data_ptr():
        raise RuntimeError("Llama twin did not tie lm_head to the embedding")
    return ours.to(device), llama.to(device)


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


def autocast_ctx(device):
    from contextlib import nullcontext
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


# ----------------------------------------------------------------------------------------------
# Losses: the trainer's (plain) and the fused one from trainer/fused_loss.py

def plain_lm_loss(model, X, Y, M):
    from trainer.losses import masked_ce
    return masked_ce(model(X).logits, Y, M)


def fused_lm_loss(model, X, Y, M):
    from trainer.fused_loss import fused_masked_ce
    hidden, aux = model.model(X)  # final-norm hidden states; the LM head is applied in chunks
    return fused_masked_ce(hidden, model.lm_head.weight, Y, M) + aux


def labels_lm_loss(model, X, Y, M):
    """The transformers path, model(input_ids, labels=...): the model shifts the labels itself.
    It is what peft, TRL and the HF Trainer call, so it is timed for ours and Llama alike."""
    return model(X, labels=X).loss


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
    """trainer.dpo.policy_logps through the fused loss: same (pc, pr, out) contract."""
    from types import SimpleNamespace

    from trainer.fused_loss import fused_sequence_logps
    x = torch.cat([batch["x_chosen"], batch["x_rejected"]])
    y = torch.cat([batch["y_chosen"], batch["y_rejected"]])
    m = torch.cat([batch["mask_chosen"], batch["mask_rejected"]])
    hidden, aux = model.model(x)
    pc, pr = fused_sequence_logps(hidden, model.lm_head.weight, y, m).chunk(2)
    return pc, pr, SimpleNamespace(aux_loss=aux)


class Trainee:
    """A model, its AdamW and a way to take one optimizer step on a batch (the trainer's order)."""

    def __init__(self, model, device, loss_fn):
        self.model, self.device, self.loss_fn = model, device, loss_fn
        self.model.train()
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(self, *batch):
        with autocast_ctx(self.device):
            loss = self.loss_fn(self.model, *batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.detach()


# ----------------------------------------------------------------------------------------------
# Section 1: train step

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


# ----------------------------------------------------------------------------------------------
# Data for the epoch sections: generated chat-like JSONL read by the real data sets

def _lognormal_quantiles(n, median, sigma, rng):
    """n lengths whose empirical distribution is the lognormal's (stratified), shuffled."""
    from statistics import NormalDist
    q = [(i + 0.5) / n for i in range(n)]
    vals = np.array([median * math.exp(sigma * NormalDist().inv_cdf(p)) for p in q])
    rng.shuffle(vals)
    return np.maximum(1, vals.round().astype(int))


_PIECES = {}


def _pieces(tok):
    """Ids of vocabulary entries that decode to clean text (no special tokens, no broken UTF-8)."""
    key = (tok.name_or_path, len(tok))
    if key not in _PIECES:
        ids = [i for i in range(3, len(tok)) if (lambda s: s.strip() and "\ufffd" not in s and "<|" not in s)(
            tok.decode([i]))]
        _PIECES[key] = (tok, np.array(ids))
    return _PIECES[key]


def _text(pieces, n, rng):
    """Text of about n tokens: n random clean token ids, decoded (re-encoding merges a few: <= n)."""
    tok, ids = pieces
    return tok.decode(ids[rng.integers(0, len(ids), size=int(n))].tolist())


def write_sft_jsonl(path, tok, n, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    pieces = _pieces(tok)
    p_turns = SFT_LENGTHS["turns"]
    turns = rng.choice(np.arange(1, len(p_turns) + 1), size=n, p=p_turns)
    total = int(turns.sum())
    (um, us), (am, as_) = SFT_LENGTHS["user"], SFT_LENGTHS["assistant"]
    users = _lognormal_quantiles(total, um * scale, us, rng)
    answers = _lognormal_quantiles(total, am * scale, as_, rng)
    k = 0
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            conv = []
            for _ in range(turns[i]):
                conv.append({"role": "user", "content": _text(pieces, users[k], rng)})
                conv.append({"role": "assistant", "content": _text(pieces, answers[k], rng)})
                k += 1
            f.write(json.dumps({"conversations": conv}, ensure_ascii=False) + "\n")


def write_dpo_jsonl(path, tok, n, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    pieces = _pieces(tok)
    P, C, R = (_lognormal_quantiles(n, DPO_LENGTHS[k][0] * scale, DPO_LENGTHS[k][1], rng)
               for k in ("prompt", "chosen", "rejected"))
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            prompt = {"role": "user", "content": _text(pieces, P[i], rng)}
            row = {"chosen": [prompt, {"role": "assistant", "content": _text(pieces, C[i], rng)}],
                   "rejected": [prompt, {"role": "assistant", "content": _text(pieces, R[i], rng)}]}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def length_stats(lengths, max_len):
    a = np.asarray(lengths)
    return {"n": int(len(a)), "mean": float(a.mean()), "median": float(np.median(a)),
            "p90": float(np.percentile(a, 90)), "max": int(a.max()), "max_len": int(max_len),
            "mean_over_max": float(a.mean() / max_len)}


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


def _tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(os.path.join(ROOT, "model"))


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


# ----------------------------------------------------------------------------------------------
# Section 2a: SFT epoch

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


# ----------------------------------------------------------------------------------------------
# Section 2b: DPO epoch, and section 3: DPO step

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
    from trainer.dpo import policy_logps
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
    from trainer.dpo import DPOStage
    st = DPOStage(beta)
    return st, (lambda m, b: st.loss(m, b)[0])


def reference_pass(model, ds, collate, device, batch_size, fused):
    """trainer.dpo.compute_reference_logps (its own code; routed through the fused log-probs if asked)."""
    import trainer.dpo as tdpo
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
                import trainer.dpo as tdpo
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


# ----------------------------------------------------------------------------------------------
# Section 3c: distillation step

def plain_distill_step_loss(teacher):
    """MiniMind's train_distillation.py: both models' full (B, T, V) logits, KL and CE over them."""
    from trainer.distill import plain_distill_loss

    def loss(model, X, Y, M):
        with torch.no_grad():
            zt = teacher(X).logits
        return plain_distill_loss(model(X).logits, zt, Y, M, 0.0, 1.0)[0]
    return loss


def fused_distill_step_loss(teacher):
    """The project's: trainer.distill.DistillStage.loss (hidden states, chunked KL on target rows)."""
    from trainer.distill import DistillStage, Teacher
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


# ----------------------------------------------------------------------------------------------
# Section 4: generation

def bench_gen(S, device, args, log):
    name, hidden, layers = S["gen_config"]
    ours, llama = build_pair(hidden, layers, device)
    ours.eval(), llama.eval()
    if device.type == "cuda":
        ours.to(torch.bfloat16), llama.to(torch.bfloat16)
    P, N = S["gen_prompt"], S["gen_new"]
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(3, ours.config.vocab_size, (1, P), generator=g).to(device)
    mask = torch.ones_like(ids)
    outs = {}
    kw = dict(max_new_tokens=N, min_new_tokens=N, do_sample=False, eos_token_id=None, pad_token_id=0,
              use_cache=True)

    def gen(model, key):
        def run():
            with torch.no_grad():
                outs[key] = model.generate(ids, attention_mask=mask, **kw)
        return run
    log(f"[gen] {name} ({hidden} x {layers}), prompt {P}, {N} new tokens, greedy, batch 1")
    times = interleaved({"minimind": gen(ours, "minimind"), "llama": gen(llama, "llama")}, S["reps"], device,
                        log=log)
    new = {k: int(v.shape[1] - P) for k, v in outs.items()}
    res = {"config": name, "hidden_size": hidden, "num_hidden_layers": layers, "prompt_tokens": P,
           "new_tokens": N, "dtype": "bfloat16" if device.type == "cuda" else "float32",
           "same_tokens": bool(torch.equal(outs["minimind"], outs["llama"])), "variants": {}}
    for v in times:
        res["variants"][v] = {"times_s": times[v], "new_tokens": new[v],
                              "tokens_per_s": throughput(new[v], times[v])}
    res["ratios"] = {"minimind/llama": ratio(res["variants"]["minimind"]["tokens_per_s"]["per_rep"],
                                             res["variants"]["llama"]["tokens_per_s"]["per_rep"])}
    return res


# ----------------------------------------------------------------------------------------------
# Section 5: matmul peak and MFU

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


# ----------------------------------------------------------------------------------------------
# Targets and the table

def targets(results):
    rows = []

    def add(what, goal, value, ok):
        rows.append({"target": what, "goal": goal, "measured": value, "met": bool(ok)})
    for res in results.get("train", []):
        for key, r in res["ratios"].items():
            if key.endswith(("/llama", "/llama:labels")):
                add(f"train step {res['config']}: {key}", ">= 1.0", r["median"], r["median"] >= 1.0)
    for sec in ("sft", "dpo"):
        if sec in results:
            r = results[sec]["ratios"]["project/minimind_batching"]
            add(f"{sec} epoch effective tokens/s: project/minimind_batching", ">= 2.0", r["median"],
                r["median"] >= 2.0)
    if "dpo_step" in results:
        r = results["dpo_step"]["ratios"]["cached_speedup"]
        add("dpo step: on-the-fly time / cached time", "> 1.0 (~1.3x expected: one forward of 3 saved)",
            r["median"], r["median"] > 1.0)
    if "distill" in results:
        r = results["distill"]["ratios"]
        add("distill step time: fused/plain", "<= 1.0", r["time fused/plain"]["median"],
            r["time fused/plain"]["median"] <= 1.0)
        add("distill step peak memory: fused/plain", "<= 0.6", r["peak memory fused/plain"]["median"],
            r["peak memory fused/plain"]["median"] <= 0.6)
    if "gen" in results:
        r = results["gen"]["ratios"]["minimind/llama"]
        add("generation tokens/s: minimind/llama", ">= 1.0", r["median"], r["median"] >= 1.0)
    return rows


def _fmt_summary(s, scale=1.0, fmt="{:.1f}"):
    return f"{fmt.format(s['median'] * scale)} ({fmt.format(s['min'] * scale)}-{fmt.format(s['max'] * scale)})"


def table(results):
    lines = []
    meta = results["meta"]
    lines.append(f"device {meta['device']} | {meta['dtype']} | torch {meta['torch']} | transformers "
                 f"{meta['transformers']} | threads {meta['threads']} | load {meta['loadavg_start']} -> "
                 f"{meta['loadavg_end']} | reps {meta['reps']} (median (min-max))")
    if "mfu" in results:
        m = results["mfu"]
        lines.append(f"matmul peak: {m['dtype']} {m['n']}^3 = {m['peak_flops_per_s'] / 1e9:.1f} GFLOP/s (best of "
                     f"{len(m['times_s'])} samples; median {m['flops_per_s']['median'] / 1e9:.1f})")
    for res in results.get("train", []):
        lines.append(f"\n[train step] {res['config']} {res['hidden_size']}x{res['num_hidden_layers']} "
                     f"({res['params'] / 1e6:.3f}M), batch {res['batch']}x{res['seq_len']}, {res['dtype']}")
        lines.append(f"  {'variant':24s} {'tokens/s':>26s} {'MFU % (vs best peak)':>22s} "
                     f"{'MFU % same round':>18s} {'peak MB':>9s}")
        for v, r in res["variants"].items():
            mfu = _fmt_summary(r["mfu"], 100) if "mfu" in r else "-"
            mfu2 = _fmt_summary(r["mfu_same_round"], 100) if "mfu_same_round" in r else "-"
            extra = f"  (first step incl. compile {r['first_step_incl_compile_s']:.0f}s)" \
                if "first_step_incl_compile_s" in r else ""
            lines.append(f"  {v:24s} {_fmt_summary(r['tokens_per_s']):>26s} {mfu:>22s} {mfu2:>18s} "
                         f"{r['peak_mem_mb']:9.0f}{extra}")
        for k, r in res["ratios"].items():
            lines.append(f"  ratio {k:34s} {_fmt_summary(r, fmt='{:.2f}')}x")
    for sec, label in (("sft", "SFT epoch"), ("dpo", "DPO epoch")):
        if sec not in results:
            continue
        res = results[sec]
        n = res.get("samples", res.get("pairs"))
        mix = res["length_mix"]
        st = mix.get("tokens", mix.get("tokens_longer_side"))
        lines.append(f"\n[{label}] {n} items, max_seq_len {res['max_seq_len']}, model {res['model']} "
                     f"{res['hidden_size']}x{res['num_hidden_layers']}; lengths mean {st['mean']:.0f} median "
                     f"{st['median']:.0f} p90 {st['p90']:.0f} max {st['max']}")
        sc = res["padding_at_scale"]
        lines.append(f"  at scale ({sc['samples']} items of the same mix, counted): padding "
                     f"{100 * sc['minimind_pad_fraction']:.1f}% (MiniMind) vs {100 * sc['project_pad_fraction']:.1f}% "
                     f"(project), {sc['padded_token_ratio']:.2f}x fewer tokens computed")
        lines.append(f"  {'variant':24s} {'effective tokens/s':>26s} {'pad %':>7s} {'peak MB':>9s}")
        for v, r in res["variants"].items():
            lines.append(f"  {v:24s} {_fmt_summary(r['effective_tokens_per_s']):>26s} "
                         f"{100 * r['pad_fraction']:7.1f} {r['peak_mem_mb']:9.0f}")
        for k, r in res["ratios"].items():
            lines.append(f"  ratio {k:34s} {_fmt_summary(r, fmt='{:.2f}')}x")
    if "dpo_step" in results:
        res = results["dpo_step"]
        lines.append(f"\n[DPO step] {res['batches']} length-grouped batches of {res['batch_size_pairs']} pairs")
        for v, r in res["variants"].items():
            lines.append(f"  {v:24s} {_fmt_summary(r['step_s'], 1e3, '{:.0f}'):>26s} ms/step "
                         f"{r['peak_mem_mb']:9.0f} MB")
        r = res["ratios"]["cached_speedup"]
        lines.append(f"  ratio on-the-fly/cached time            {_fmt_summary(r, fmt='{:.2f}')}x")
    if "distill" in results:
        res = results["distill"]
        lines.append(f"\n[distill step] student {res['student'][0]}x{res['student'][1]}, teacher {res['teacher'][0]}x"
                     f"{res['teacher'][1]}, batch {res['batch']}x{res['seq_len']}, {res['dtype']}")
        for v, r in res["variants"].items():
            lines.append(f"  {v:24s} {_fmt_summary(r['step_s'], 1e3, '{:.0f}'):>26s} ms/step "
                         f"{_fmt_summary(r['peak_mem_mb'], fmt='{:.0f}'):>20s} MB")
        lines.append(f"  {'floor (SFT step alone)':24s} {'':>26s}         "
                     f"{_fmt_summary(res['floor_peak_mem_mb'], fmt='{:.0f}'):>20s} MB")
        for k, r in res["ratios"].items():
            lines.append(f"  ratio {k:34s} {_fmt_summary(r, fmt='{:.2f}')}x")
    if "gen" in results:
        res = results["gen"]
        lines.append(f"\n[generate] {res['config']} {res['hidden_size']}x{res['num_hidden_layers']}, prompt "
                     f"{res['prompt_tokens']}, {res['new_tokens']} new tokens, greedy, KV cache; "
                     f"same tokens: {res['same_tokens']}")
        for v, r in res["variants"].items():
            lines.append(f"  {v:24s} {_fmt_summary(r['tokens_per_s']):>26s} tokens/s")
        r = res["ratios"]["minimind/llama"]
        lines.append(f"  ratio minimind/llama                    {_fmt_summary(r, fmt='{:.2f}')}x")
    if results.get("targets"):
        lines.append("\n[targets]")
        for t in results["targets"]:
            lines.append(f"  {'MET    ' if t['met'] else 'NOT MET'} {t['target']}: {t['measured']:.2f} "
                         f"(goal {t['goal']})")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------

def parse_args(argv=None):
    from trainer.args import ArgumentParser  # argparse with a one-line error, exit 2
    p = ArgumentParser(description="Benchmark: train step, SFT/DPO epochs, DPO step, generation, MFU")
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
    S = dict(QUICK if args.quick else (FULL_CUDA if device.type == "cuda" else FULL_CPU))
    if args.reps:
        S["reps"] = args.reps
    t_start = time.time()

    def log(msg):
        print(f"[{time.time() - t_start:7.1f}s] {msg}", file=sys.stderr, flush=True)

    import transformers
    results = {"meta": {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else
        f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
        "dtype": "bfloat16 autocast (train), bfloat16 (generate)" if device.type == "cuda" else "float32",
        "torch": torch.__version__, "transformers": transformers.__version__,
        "threads": torch.get_num_threads(), "quick": args.quick, "reps": S["reps"],
        "loadavg_start": "%.1f %.1f %.1f" % os.getloadavg(), "argv": sys.argv[1:] if argv is None else argv,
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
        if "gen" in args.sections:
            results["gen"] = bench_gen(S, device, args, log)
    results["targets"] = targets(results)
    results["meta"]["loadavg_end"] = "%.1f %.1f %.1f" % os.getloadavg()
    results["meta"]["wall_s"] = time.time() - t_start
    path = args.json or f"bench_{device.type}.json"
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print(table(results))
    print(f"\nwrote {path}")
    return results


if __name__ == "__main__":
    main()
