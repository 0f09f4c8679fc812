"""Section grpo: one whole GRPO optimizer step -- rollout (G sampled completions per prompt), reward
scoring, the reference model's log-probs for the KL, the policy update -- by three implementations on
the same weights and the same settings, interleaved:

  ours      the project's code path: trainer.stages.grpo.GRPOStage driven as trainer/loop.py drives it
            (stage.rollout -> the "torch" rollout engine of trainer/rl/rollout.py, the rewards, the
            reference log-probs; then for each micro-batch stage.loss -> trainer/rl/grpo.policy_loss in the
            trainer's autocast, backward, grad clip, AdamW step), with a stand-in for the Trainer object
  trl       TRL's GRPOTrainer (no vLLM) on the Llama export of the same weights (model/export.py's
            export_llama, float32; TRL loads the policy and its reference model from that folder): one
            step is what the HF Trainer's inner loop does per optimizer step with gradient accumulation
            1 -- trainer.training_step (generation, scoring, reference forward, loss, backward), grad
            clip, optimizer and scheduler step, zero_grad. Skipped, with a note, when trl is not importable.
  minimind  MiniMind's trainer/train_grpo.py as of its commit 83e52f6, reproduced here on our
            MiniMindForCausalLM: transformers' generate (do_sample, num_return_sequences) on the
            left-padded prompts; the policy forward with logits for every completion position
            (logits_to_keep = C + 1) and a per-row log_softmax over the whole vocabulary; the reference
            model's same forward under no_grad; its advantages (group-normalised, clamped to +-10, then
            normalised again over the batch) and loss (exp(logp - logp.detach()) * A - beta * k3 KL, mean
            over each completion, then over completions); backward, clip, AdamW, zero_grad. That commit
            takes the old log-probs as the new ones detached (no extra forward); its reward model is
            replaced by the shared rule reward below. Its own model file of that commit cannot generate
            under transformers 5 (its forward drops the DynamicCache generate() passes, so the second
            decoding step fails), hence our model, which holds the same weights under the same names.
  minimind_head  MiniMind's HEAD (2026) trainer/train_grpo.py over its trainer/rollout_engine.py, the fixed
            algorithm, the same way: the prompts copied G times before generate(), a no-grad forward of the
            policy for the old log-probs inside the rollout (counted as rollout time, as its engine returns
            them), logits for every position (prompt too) with a log_softmax over all of them for the policy
            and the reference, the ratio to the old log-probs clipped (its "grpo" branch).

Shared settings: the same prompts (a generated RLAIF file read by dataset.lm_dataset.PromptDataset, the
chat template applied; the same token ids reach every variant), num_generations G, max new tokens,
temperature 0.8, top_p 1.0, beta 0.02 (so each variant runs a frozen reference model), loss "grpo"
(PPO-clipped, mean per completion then over completions: MiniMind's normalisation), learning rate 1e-6,
grad clip 1.0, one reward: trainer.rl.rewards.length_reward (a deterministic rule with TRL's
signature). The weights are random (transformers' init), so the completions are mostly full length;
every throughput counts the completion tokens each step actually produced (up to and including EOS).

Reported per variant: completion tokens/s of the whole step; rollout tokens/s (completion tokens over
the generation time alone: the generate call and the decode to text); the median split of the step
into rollout, reference forward and the rest (policy forward, backward, optimizer, rewards: "update");
peak memory of one steady-state step (after a warm-up step allocated AdamW's state) with both models'
weights and the optimizer state counted (benchmarks/harness.py). Ratios ours/trl, ours/minimind and
ours/minimind_head are paired per repetition.
"""
import copy
import io
import json
import os
import time
import warnings
from contextlib import nullcontext, redirect_stdout
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.chat_data import _pieces, _text, _tokenizer
from benchmarks.harness import PeakMemory, interleaved, optimizer_bytes, param_bytes, ratio, summary, sync
from benchmarks.mfu import n_params
from benchmarks.models import build_pair

TEMPERATURE, TOP_P, BETA, LOSS_TYPE, LR, GRAD_CLIP, EPSILON = 0.8, 1.0, 0.02, "grpo", 1e-6, 1.0, 0.2
MAX_PROMPT = 66  # MiniMind's (and train_grpo.py's) --max_seq_len: prompt tokens kept


# ----------------------------------------------------------------------------------------------
# The prompts: a generated RLAIF file through the project's own data set

def write_rlaif_jsonl(path, tok, n, seed=3):
    """n one-turn user prompts of spread lengths (so left padding is exercised), RLAIF format."""
    rng = np.random.default_rng(seed)
    pieces = _pieces(tok)
    lengths = np.linspace(12, 48, n).round().astype(int) if n > 1 else [30]
    with open(path, "w", encoding="utf-8") as f:
        for k in lengths:
            conv = [{"role": "user", "content": _text(pieces, k, rng)}, {"role": "assistant", "content": ""}]
            f.write(json.dumps({"conversations": conv}, ensure_ascii=False) + "\n")


# ----------------------------------------------------------------------------------------------
# Timing the phases inside a step (each variant's step records into a Phases)

class Phases:
    """Seconds of the rollout and the reference forward, and the completion tokens, of the step running."""

    def __init__(self, device):
        self.device = device
        self.reset()

    def reset(self):
        self.rollout = self.reference = 0.0
        self.tokens = 0

    def timed(self, what, fn, *a, **kw):
        sync(self.device)
        t0 = time.perf_counter()
        out = fn(*a, **kw)
        sync(self.device)
        setattr(self, what, getattr(self, what) + time.perf_counter() - t0)
        return out


class Variant:
    """A step function plus what its steps recorded: per-call phases and tokens, in call order."""

    def __init__(self, step, phases, models, opt):
        self._step, self.phases, self.models, self.opt = step, phases, models, opt
        self.calls = []  # (tokens, rollout_s, reference_s) per call

    def __call__(self):
        self.phases.reset()
        self._step()
        p = self.phases
        self.calls.append((p.tokens, p.rollout, p.reference))

    def static_bytes(self):
        opt = getattr(self.opt, "optimizer", self.opt)  # accelerate wraps TRL's
        return sum(param_bytes(m) for m in self.models) + optimizer_bytes(opt)


# ----------------------------------------------------------------------------------------------
# ours: GRPOStage as trainer/loop.py drives it

def make_ours(policy, tok, items, G, N, device, workdir):
    import trainer.stages.grpo as sgrpo
    from trainer.rl.rewards import resolve_funcs
    # what GRPOStage reads of train_grpo.py's flags (scripts are not imported: tests/test_layout.py)
    args = SimpleNamespace(num_generations=G, max_gen_len=N, temperature=TEMPERATURE, top_p=TOP_P, beta=BETA,
                           loss_type=LOSS_TYPE, epsilon=EPSILON, epsilon_high=EPSILON, num_iterations=1,
                           scale_rewards="group", mask_truncated_completions=False, log_completions=0,
                           rollout_engine="torch", seed=1337)
    # the Trainer's defaults: bfloat16 autocast on CUDA, plain float32 on the CPU
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else nullcontext
    trainer = SimpleNamespace(tokenizer=tok, autocast=autocast, device=device, rank=0, world_size=1, ddp=False,
                              is_main=True, step=0, wandb=None, log=lambda *a, **k: None)
    stage = sgrpo.GRPOStage(args, resolve_funcs(["length"]))
    model = policy
    model.train()
    stage.prepare(trainer, model, None, None, None, None)  # builds the frozen reference and the engine
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    ph = Phases(device)

    engine_generate = stage.engine.generate

    def generate(*a, **kw):
        roll = ph.timed("rollout", engine_generate, *a, **kw)
        ph.tokens += int(roll.completion_mask.sum())
        return roll
    stage.engine.generate = generate
    logprobs = sgrpo.completion_logprobs

    def timed_logprobs(m, *a, **kw):  # the reference pass is the call on the stage's frozen copy
        return ph.timed("reference", logprobs, m, *a, **kw) if m is stage.ref else logprobs(m, *a, **kw)

    batches = [(items, sum(len(it["prompt_ids"]) for it in items))]

    def step():
        sgrpo.completion_logprobs = timed_logprobs
        try:
            micro = stage.rollout(trainer, model, batches)
            for batch, _ in micro:  # the loop's order: each micro-batch's loss / len(micro), backward
                with trainer.autocast():
                    loss, _ = stage.loss(model, batch)
                (loss / len(micro)).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            opt.step()
            opt.zero_grad(set_to_none=True)
            trainer.step += 1
        finally:
            sgrpo.completion_logprobs = logprobs
    return Variant(step, ph, [model, stage.ref], opt)


# ----------------------------------------------------------------------------------------------
# trl: GRPOTrainer on the Llama export

def trl_version():
    """trl's version, or None when it cannot be imported (the variant is then skipped)."""
    try:
        import trl
        from trl import GRPOConfig, GRPOTrainer  # noqa: F401
        return trl.__version__
    except Exception:  # ImportError, or a trl that does not match the installed transformers
        return None


def make_trl(policy, tok, prompt_texts, G, N, device, workdir):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from model.export import export_llama
    from trainer.rl.rewards import length_reward
    folder = os.path.join(workdir, "grpo_llama")
    export_llama(policy, tok, folder, outtype="f32", force=True)
    cfg = GRPOConfig(
        output_dir=os.path.join(workdir, "grpo_trl"), per_device_train_batch_size=len(prompt_texts) * G,
        gradient_accumulation_steps=1, num_generations=G, max_completion_length=N, temperature=TEMPERATURE,
        top_p=TOP_P, beta=BETA, loss_type=LOSS_TYPE, epsilon=EPSILON, scale_rewards="group", num_iterations=1,
        learning_rate=LR, lr_scheduler_type="constant", max_grad_norm=GRAD_CLIP, use_vllm=False,
        use_cpu=device.type == "cpu", bf16=device.type == "cuda", report_to="none", logging_strategy="no",
        save_strategy="no", disable_tqdm=True, log_completions=False, dataloader_num_workers=0, max_steps=1,
        seed=0)
    # One step through trainer.train(): it builds the optimizer, scheduler and accelerate's wrapping, which
    # the timed steps then reuse (it is also the warm-up: AdamW's state exists after it). Its metrics line
    # (printed, as report_to="none" does) and transformers' deprecation warnings stay out of the bench output.
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", FutureWarning)
        trainer = GRPOTrainer(model=folder, reward_funcs=[length_reward], args=cfg,
                              train_dataset=Dataset.from_dict({"prompt": prompt_texts}), processing_class=tok)
        trainer.train()
    model = trainer.model_wrapped
    inputs = next(iter(trainer.get_train_dataloader()))  # the B prompts, each repeated G times (RepeatSampler)
    ph = Phases(device)
    seen = {}
    generate, logps = trainer._generate, trainer._get_per_token_logps_and_entropies

    def timed_generate(prompts):
        out = ph.timed("rollout", generate, prompts)
        ph.tokens += sum(len(c) for c in out[1])  # completion ids, cut after the first EOS
        seen["prompt_ids"] = [list(p) for p in out[0]]
        return out

    def timed_logps(m, *a, **kw):
        return ph.timed("reference", logps, m, *a, **kw) if m is trainer.ref_model else logps(m, *a, **kw)
    trainer._generate, trainer._get_per_token_logps_and_entropies = timed_generate, timed_logps

    def step():  # the HF Trainer's inner loop for one optimizer step, gradient accumulation 1
        trainer.training_step(model, inputs, None)
        trainer._clip_grad_norm(model)
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        model.zero_grad()
        trainer.state.global_step += 1
    v = Variant(step, ph, [trainer.model, trainer.ref_model], trainer.optimizer)
    v.seen = seen
    return v


# ----------------------------------------------------------------------------------------------
# minimind: its train_grpo.py step (commit 83e52f6), on our model

def _minimind_parts(policy, device):
    """What both MiniMind steps hold: the policy in train mode, a frozen copy as the reference, AdamW, the
    trainer's autocast (bf16 on CUDA) and the phase timer."""
    policy.train()
    ref = copy.deepcopy(policy).eval().requires_grad_(False)
    opt = torch.optim.AdamW(policy.parameters(), lr=LR)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    return policy, ref, opt, autocast, Phases(device)


def make_minimind(policy, tok, prompt_texts, G, N, device):
    from trainer.rl.rewards import length_reward
    # its autocast wraps the policy forward only (generation and the reference forward run in float32)
    model, ref, opt, autocast, ph = _minimind_parts(policy, device)
    pad, eos = tok.pad_token_id, tok.eos_token_id

    def per_token_logps(m, ids, n_keep):
        # logits for the last n_keep + 1 positions over the whole vocabulary, then a log_softmax per row
        logits = m(ids, logits_to_keep=n_keep + 1).logits[:, :-1, :]
        rows = [torch.gather(lg.log_softmax(dim=-1), 1, t.unsqueeze(1)).squeeze(1)
                for lg, t in zip(logits, ids[:, -n_keep:])]
        return torch.stack(rows)

    def step():
        enc = tok(prompt_texts, return_tensors="pt", padding=True, return_token_type_ids=False,
                  padding_side="left", add_special_tokens=False).to(device)
        ids, att = enc["input_ids"][:, -MAX_PROMPT:], enc["attention_mask"][:, -MAX_PROMPT:]
        with torch.no_grad():
            out = ph.timed("rollout", model.generate, input_ids=ids, attention_mask=att, max_new_tokens=N,
                           do_sample=True, temperature=TEMPERATURE, top_p=TOP_P, num_return_sequences=G,
                           pad_token_id=pad)
        comp = out[:, ids.size(1):]
        with autocast:
            logps = per_token_logps(model, out, comp.size(1))
        with torch.no_grad():
            ref_logps = ph.timed("reference", per_token_logps, ref, out, comp.size(1))
        texts = ph.timed("rollout", tok.batch_decode, comp, skip_special_tokens=True)
        rewards = torch.tensor(length_reward(texts), dtype=torch.float32, device=device)
        grouped = rewards.view(-1, G)
        mean_r = grouped.mean(1).repeat_interleave(G)
        std_r = grouped.std(1).repeat_interleave(G)
        adv = torch.clamp((rewards - mean_r) / (std_r + 1e-4), -10, 10)
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        is_eos = comp == eos
        eos_idx = torch.full((is_eos.size(0),), is_eos.size(1), dtype=torch.long, device=device)
        eos_idx[is_eos.any(1)] = is_eos.int().argmax(1)[is_eos.any(1)]
        mask = (torch.arange(is_eos.size(1), device=device).expand(is_eos.size(0), -1) <= eos_idx[:, None]).int()
        ph.tokens += int(mask.sum())
        delta = ref_logps - logps
        kl = torch.exp(delta) - delta - 1
        per_token = -(torch.exp(logps - logps.detach()) * adv[:, None] - BETA * kl)
        loss = ((per_token * mask).sum(1) / mask.sum(1)).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        opt.step()
        opt.zero_grad()
    return Variant(step, ph, [model, ref], opt)


def make_minimind_head(policy, tok, prompt_texts, G, N, device):
    """MiniMind's HEAD (2026) step: trainer/train_grpo.py over trainer/rollout_engine.py's TorchRolloutEngine.
    Against 83e52f6: the rollout copies each prompt G times before generate() and then runs a no-grad
    forward of the policy for the old log-probs (logits_to_keep = C + 1, a log_softmax per row); the policy
    and the reference forwards return logits for every position, prompt included, with the full attention
    mask, and take a log_softmax over the whole (B, P + C - 1, V) tensor before gathering the completion's;
    the loss is the clipped ratio to those old log-probs ("grpo"; CISPO is its other branch)."""
    from trainer.rl.rewards import length_reward
    model, ref, opt, autocast, ph = _minimind_parts(policy, device)
    pad, eos = tok.pad_token_id, tok.eos_token_id

    def rollout(ids, att):  # TorchRolloutEngine.rollout (its autocast context is the trainer's)
        with torch.no_grad(), autocast:
            out = model.generate(input_ids=ids.repeat_interleave(G, dim=0), attention_mask=att.repeat_interleave(G, dim=0),
                                 max_new_tokens=N, do_sample=True, temperature=TEMPERATURE, top_p=TOP_P,
                                 num_return_sequences=1, pad_token_id=pad, eos_token_id=eos).clone()
            comp = out[:, ids.size(1):]
            full_mask = (out != pad).long()
            logits = model(out, attention_mask=full_mask, logits_to_keep=comp.size(1) + 1).logits[:, :-1, :]
            old = torch.stack([torch.gather(lg.log_softmax(dim=-1), 1, t.unsqueeze(1)).squeeze(1)
                               for lg, t in zip(logits, out[:, -comp.size(1):])])
        return out, comp, old, tok.batch_decode(comp, skip_special_tokens=True)

    def all_position_logps(m, out, full_mask, pos):
        logits = m(out, attention_mask=full_mask).logits[:, :-1, :]
        return F.log_softmax(logits, dim=-1).gather(2, out[:, 1:].unsqueeze(-1)).squeeze(-1).gather(1, pos)

    def step():
        enc = tok(prompt_texts, return_tensors="pt", padding=True, return_token_type_ids=False,
                  padding_side="left", add_special_tokens=False).to(device)
        ids, att = enc["input_ids"][:, -MAX_PROMPT:], enc["attention_mask"][:, -MAX_PROMPT:]
        out, comp, old, texts = ph.timed("rollout", rollout, ids, att)
        full_mask = (out != pad).long()
        pos = ids.size(1) - 1 + torch.arange(comp.size(1), device=device)[None].expand(out.size(0), -1)
        rewards = torch.tensor(length_reward(texts), dtype=torch.float32, device=device)
        with autocast:
            logps = all_position_logps(model, out, full_mask, pos)
        with torch.no_grad():
            ref_logps = ph.timed("reference", all_position_logps, ref, out, full_mask, pos)
        grouped = rewards.view(-1, G)
        mean_r = grouped.mean(1).repeat_interleave(G)
        std_r = grouped.std(1, unbiased=False).repeat_interleave(G)
        adv = (rewards - mean_r) / (std_r + 1e-4)
        is_eos = comp == eos
        eos_idx = torch.full((is_eos.size(0),), is_eos.size(1) - 1, dtype=torch.long, device=device)
        eos_idx[is_eos.any(1)] = is_eos.int().argmax(1)[is_eos.any(1)]
        mask = (torch.arange(is_eos.size(1), device=device).expand(is_eos.size(0), -1) <= eos_idx[:, None]).int()
        ph.tokens += int(mask.sum())
        delta = ref_logps - logps
        kl = torch.exp(delta) - delta - 1
        r = torch.exp(logps - old)
        per_token = -(torch.min(r * adv[:, None], torch.clamp(r, 1 - EPSILON, 1 + EPSILON) * adv[:, None]) - BETA * kl)
        loss = ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        opt.step()
        opt.zero_grad()
    return Variant(step, ph, [model, ref], opt)


# ----------------------------------------------------------------------------------------------
# The section

def rl_prompts(tok, n, workdir, stem):
    """(prompt items, their token ids, the same as text, whether the text tokenizes back to those ids): n
    generated RLAIF prompts through the project's own data set (the RL sections' shared input)."""
    from dataset.lm_dataset import PromptDataset, prompt_collate
    path = os.path.join(workdir, f"{stem}.jsonl")
    write_rlaif_jsonl(path, tok, n)
    ds = PromptDataset(path, tok, max_length=MAX_PROMPT, cache_dir=os.path.join(workdir, "cache"), verbose=False)
    items = prompt_collate([ds[i] for i in range(len(ds))])
    prompt_ids = [it["prompt_ids"].tolist() for it in items]
    # the same token ids as text for TRL and MiniMind (special tokens kept; they tokenize back to themselves)
    prompt_texts = [tok.decode(p, skip_special_tokens=False) for p in prompt_ids]
    same_text_ids = all(tok(t, add_special_tokens=False)["input_ids"] == p for t, p in zip(prompt_texts, prompt_ids))
    return items, prompt_ids, prompt_texts, same_text_ids


def bench_grpo(S, device, args, log, workdir):
    name, hidden, layers = S["grpo_config"]
    B, G, N = S["grpo_prompts"], S["grpo_generations"], S["grpo_new_tokens"]
    tok = _tokenizer()
    items, prompt_ids, prompt_texts, same_text_ids = rl_prompts(tok, B, workdir, "grpo_prompts")
    ours, _ = build_pair(hidden, layers, device)
    log(f"[grpo] {name} ({hidden} x {layers}), {B} prompts x G={G}, {N} new tokens, T={TEMPERATURE}, "
        f"top_p={TOP_P}, beta={BETA}, loss {LOSS_TYPE}")

    variants, skipped = {}, {}
    variants["ours"] = make_ours(copy.deepcopy(ours), tok, items, G, N, device, workdir)
    version = trl_version()
    if version is None:
        skipped["trl"] = "trl is not importable: pip install -r requirements-bench.txt"
        log("[grpo] trl variant skipped: trl is not importable (pip install -r requirements-bench.txt)")
    else:
        variants["trl"] = make_trl(copy.deepcopy(ours), tok, prompt_texts, G, N, device, workdir)
    variants["minimind"] = make_minimind(copy.deepcopy(ours), tok, prompt_texts, G, N, device)
    variants["minimind_head"] = make_minimind_head(copy.deepcopy(ours), tok, prompt_texts, G, N, device)

    # warm-up (TRL's was its train() step), then one steady-state step each under the memory probe
    mem = {}
    for v, fn in variants.items():
        if v != "trl":
            fn()
        with PeakMemory(device, fn.static_bytes()) as pm:
            fn()
        mem[v] = pm
    for fn in variants.values():
        fn.calls.clear()
    times = interleaved(dict(variants), S["reps"], device, warmup=False, log=log)

    res = {"config": name, "hidden_size": hidden, "num_hidden_layers": layers, "params": n_params(ours),
           "prompts": B, "num_generations": G, "max_new_tokens": N, "prompt_tokens": [len(p) for p in prompt_ids],
           "temperature": TEMPERATURE, "top_p": TOP_P, "beta": BETA, "loss_type": LOSS_TYPE, "reward": "length",
           "learning_rate": LR, "dtype": "bfloat16 autocast" if device.type == "cuda" else "float32",
           "trl_version": version, "skipped": skipped, "same_prompt_ids": {"minimind": same_text_ids},
           "variants": {}}
    if "trl" in variants:
        res["same_prompt_ids"]["trl"] = variants["trl"].seen.get("prompt_ids") == \
            [p for p in prompt_ids for _ in range(G)]
    for v, fn in variants.items():
        tokens = [c[0] for c in fn.calls]
        roll = [c[1] for c in fn.calls]
        ref = [c[2] for c in fn.calls]
        t = times[v]
        tps = [n / s for n, s in zip(tokens, t)]
        rtps = [n / s for n, s in zip(tokens, roll)]
        res["variants"][v] = {
            "times_s": t, "completion_tokens": tokens, "rollout_s": roll, "reference_s": ref,
            "tokens_per_s": {"per_rep": tps, **summary(tps)},
            "rollout_tokens_per_s": {"per_rep": rtps, **summary(rtps)},
            "phases_s": {"rollout": summary(roll), "reference": summary(ref),
                         "update": summary([a - b - c for a, b, c in zip(t, roll, ref)])},
            "peak_mem_mb": mem[v].mb(), "peak_mem_method": mem[v].method}
    tp = {v: r["tokens_per_s"]["per_rep"] for v, r in res["variants"].items()}
    rp = {v: r["rollout_tokens_per_s"]["per_rep"] for v, r in res["variants"].items()}
    res["ratios"] = {}
    for other in ("trl", "minimind", "minimind_head"):
        if other in tp:
            res["ratios"][f"ours/{other}"] = ratio(tp["ours"], tp[other])
            res["ratios"][f"rollout ours/{other}"] = ratio(rp["ours"], rp[other])
    return res


# ----------------------------------------------------------------------------------------------
# Verdicts and printout (suite.py adds them to the run's targets and table)

# the issue's: ours/TRL >= 1.5x, ours/MiniMind >= 2x at 512 x 8 (its step as the issue describes it -- full logits,
# an extra forward for the old log-probs -- is HEAD's; 83e52f6's has neither, and both are held to the goal)
GOALS = {"trl": 1.5, "minimind": 2.0, "minimind_head": 2.0}


def grpo_targets(res):
    rows = []
    for other, goal in GOALS.items():
        r = res["ratios"].get(f"ours/{other}")
        if r is not None:
            rows.append({"target": f"grpo step completion tokens/s: ours/{other}", "goal": f">= {goal}",
                         "measured": r["median"], "met": bool(r["median"] >= goal)})
    return rows


def _fmt(s, fmt="{:.1f}"):
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}-{fmt.format(s['max'])})"


def grpo_table(res):
    lines = [f"\n[GRPO step] {res['config']} {res['hidden_size']}x{res['num_hidden_layers']}, {res['prompts']} prompts "
             f"x G={res['num_generations']}, {res['max_new_tokens']} new tokens, T={res['temperature']} "
             f"top_p={res['top_p']}, beta={res['beta']}, loss {res['loss_type']}, {res['dtype']}"
             + (f", trl {res['trl_version']}" if res["trl_version"] else ""),
             f"  {'variant':13s} {'step tokens/s':>22s} {'rollout tokens/s':>22s} "
             f"{'rollout/reference/update s':>28s} {'peak MB':>8s}"]
    for v, r in res["variants"].items():
        ph = r["phases_s"]
        split = " / ".join(f"{ph[k]['median']:.2f}" for k in ("rollout", "reference", "update"))
        lines.append(f"  {v:13s} {_fmt(r['tokens_per_s']):>22s} {_fmt(r['rollout_tokens_per_s']):>22s} "
                     f"{split:>28s} {r['peak_mem_mb']:8.0f}")
    for v, note in res["skipped"].items():
        lines.append(f"  {v:13s} skipped: {note}")
    lines += [f"  ratio {k:34s} {_fmt(r, '{:.2f}')}x" for k, r in res["ratios"].items()]
    return "\n".join(lines)
