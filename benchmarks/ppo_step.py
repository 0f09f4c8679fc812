"""Section ppo: one PPO rollout and its update -- B prompts, one sampled completion each, reward scoring,
the no-grad forwards (old log-probs, values, the reference's log-probs), the actor and critic update --
by two implementations on the same weights and the same settings, interleaved:

  ours      the project's code path: trainer.stages.ppo.PPOStage on trainer.rl.ppo.ActorCritic, driven as
            trainer/loop.py drives it (stage.rollout -> the "torch" rollout engine, the rewards, the old
            log-probs and values through the update's own forward, the reference's log-probs, GAE; then the
            step's minibatch: stage.loss -> trainer/rl/ppo.ppo_loss, backward, each parameter group clipped
            on its own, one AdamW step over both groups), with a stand-in for the Trainer object.
            --ppo_update_iters 1 and one minibatch of all B rows, so it does the work MiniMind's step does.
  minimind  MiniMind's trainer/train_ppo.py as of its commit 83e52f6, reproduced on our MiniMindForCausalLM
            (its own model file of that commit cannot generate under transformers 5, as benchmarks/grpo_step.py
            says): transformers' generate on the left-padded prompts; its CriticModel (a copy of the model,
            its trunk's output normed again under an nn.Linear value head) run with gradients over the whole
            sequence, the value read at the last real token; the actor forward with logits at every position
            and a log_softmax over the whole vocabulary, summed over the response; the same forward by its
            old actor and its reference model under no_grad (four models: actor, old actor, reference,
            critic); its loss (the clipped ratio of whole-sequence log-probs times rewards - values, the value
            MSE, kl_coef times the reference KL); backward, each model clipped, two AdamW steps. Its reward
            model is replaced by the shared rule reward below; its old actor's periodic weight copy is left out.

TRL is no peer here: trl 1.16 (requirements-bench.txt) has no PPO trainer (it was dropped from trl and from
trl.experimental), so the issue's fallback, MiniMind's 83e52f6 script, is the one compared.

Shared settings: the same prompts and token ids (as benchmarks/grpo_step.py makes them), max new tokens,
temperature 0.8, top_p 1.0, kl_coef 0.02, clip 0.2, vf_coef 0.5, actor learning rate 1e-6, critic 5e-6,
grad clip 1.0, one reward: trainer.rl.rewards.length_reward. Random weights: completions are mostly full
length; throughputs count each step's completion tokens up to and including EOS.

Reported per variant: completion tokens/s of the whole step; the median split into rollout (generation and
decoding), scoring (the no-grad forwards, the rewards, GAE) and update (the forwards with gradients,
backward, optimizers); peak memory of one steady-state step with every model's weights and the optimizer
state counted (benchmarks/harness.py). The ratio ours/minimind is paired per repetition.
"""
import copy
from contextlib import nullcontext
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from benchmarks.chat_data import _tokenizer
from benchmarks.grpo_step import MAX_PROMPT, Phases, Variant, _fmt, rl_prompts
from benchmarks.harness import PeakMemory, interleaved, ratio, summary
from benchmarks.mfu import n_params
from benchmarks.models import build_pair

TEMPERATURE, TOP_P, KL_COEF, CLIP, VF_COEF, LR, CRITIC_LR, GRAD_CLIP = 0.8, 1.0, 0.02, 0.2, 0.5, 1e-6, 5e-6, 1.0


class PPOPhases(Phases):
    """Seconds of the rollout (generation) and the scoring (the no-grad forwards, rewards, GAE)."""

    def reset(self):
        self.rollout = self.scoring = 0.0
        self.tokens = 0


class PPOVariant(Variant):
    def __call__(self):
        self.phases.reset()
        self._step()
        p = self.phases
        self.calls.append((p.tokens, p.rollout, p.scoring))


def _autocast(device):
    return (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else nullcontext


# ----------------------------------------------------------------------------------------------
# ours: PPOStage as trainer/loop.py drives it

def make_ours(policy, tok, items, N, device):
    from trainer.rl.ppo import ActorCritic, make_critic
    from trainer.rl.rewards import resolve_funcs
    from trainer.stages.ppo import PPOStage
    B = len(items)
    # what PPOStage reads of train_ppo.py's flags (scripts are not imported: tests/test_layout.py)
    args = SimpleNamespace(max_gen_len=N, temperature=TEMPERATURE, top_p=TOP_P, kl_coef=KL_COEF, clip_epsilon=CLIP,
                           cliprange_value=0.2, vf_coef=VF_COEF, gamma=1.0, lam=0.95, ppo_update_iters=1,
                           mini_batch_size=B, batch_size=B, accumulation_steps=1, early_stop_kl=1e9,
                           critic_learning_rate=CRITIC_LR, learning_rate=LR, log_completions=0,
                           rollout_engine="torch", seed=1337)
    trainer = SimpleNamespace(tokenizer=tok, autocast=_autocast(device), device=device, rank=0, world_size=1,
                              ddp=False, is_main=True, step=0, total_steps=10 ** 6, wandb=None, pad_id=tok.pad_token_id,
                              log=lambda *a, **k: None)
    model = ActorCritic(policy, make_critic(policy)).to(device)
    model.train()
    stage = PPOStage(args, resolve_funcs(["length"]))
    stage.prepare(trainer, model, None, None, None, None)  # the frozen reference and the engine
    opt = torch.optim.AdamW(stage.param_groups(model, args))
    ph = PPOPhases(device)
    engine_generate = stage.engine.generate

    def generate(*a, **kw):
        roll = ph.timed("rollout", engine_generate, *a, **kw)
        ph.tokens += int(roll.completion_mask.sum())
        return roll
    stage.engine.generate = generate
    batches = [(items, sum(len(it["prompt_ids"]) for it in items))]

    def step():
        micro = ph.timed("scoring", stage.rollout, trainer, model, batches)
        ph.scoring -= ph.rollout  # the generation inside it is the rollout's
        for iteration in range(stage.num_iterations):
            step_micro = stage.iteration_batches(micro, iteration)
            for batch, _ in step_micro:
                with trainer.autocast():
                    loss, _ = stage.loss(model, batch)
                (loss / len(step_micro)).backward()
            if step_micro and stage.accept_step(trainer):
                for pg in opt.param_groups:
                    torch.nn.utils.clip_grad_norm_(pg["params"], GRAD_CLIP)
                opt.step()
            opt.zero_grad(set_to_none=True)
            trainer.step += 1
    return PPOVariant(step, ph, [model, stage.ref], opt)


# ----------------------------------------------------------------------------------------------
# minimind: its train_ppo.py step (commit 83e52f6), on our model

class _Critic(torch.nn.Module):
    """MiniMind 83e52f6's CriticModel: the whole causal LM copied, a value head on its trunk's output
    (normed once more, as its forward does)."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm
        self.value_head = torch.nn.Linear(lm.config.hidden_size, 1)

    def forward(self, input_ids, attention_mask):
        hidden = self.lm.model(input_ids, attention_mask)[0]
        return self.value_head(self.lm.model.norm(hidden)).squeeze(-1)


def make_minimind(policy, tok, prompt_texts, N, device):
    from trainer.rl.rewards import length_reward
    actor = policy
    actor.train()
    old_actor = copy.deepcopy(actor).eval().requires_grad_(False)
    ref = copy.deepcopy(actor).eval().requires_grad_(False)
    critic = _Critic(copy.deepcopy(actor)).to(device)
    critic.train()
    actor_opt = torch.optim.AdamW(actor.parameters(), lr=LR)
    critic_opt = torch.optim.AdamW(critic.parameters(), lr=CRITIC_LR)
    # its autocast wraps the actor's forward only
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    ph = PPOPhases(device)
    pad, eos = tok.pad_token_id, tok.eos_token_id

    def seq_logp(logits, labels, final_mask):
        lp = F.log_softmax(logits[:, :-1], dim=-1).gather(2, labels.unsqueeze(-1)).squeeze(-1)
        return (lp * final_mask).sum(dim=1)

    def step():
        enc = tok(prompt_texts, return_tensors="pt", padding=True, return_token_type_ids=False,
                  padding_side="left", add_special_tokens=False).to(device)
        ids, att = enc["input_ids"][:, -MAX_PROMPT:], enc["attention_mask"][:, -MAX_PROMPT:]
        P = ids.size(1)
        with torch.no_grad():
            gen = ph.timed("rollout", actor.generate, input_ids=ids, attention_mask=att, max_new_tokens=N,
                           do_sample=True, temperature=TEMPERATURE, top_p=TOP_P, pad_token_id=pad, eos_token_id=eos)
        texts = ph.timed("rollout", lambda: [tok.decode(gen[i, P:], skip_special_tokens=True)
                                             for i in range(gen.size(0))])
        comp = gen[:, P:]
        is_eos = comp == eos
        ends = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, torch.full_like(is_eos[:, 0], comp.size(1),
                                                                                      dtype=torch.long))
        ph.tokens += int(ends.sum())
        rewards = ph.timed("scoring", lambda: torch.tensor(length_reward(texts), dtype=torch.float32, device=device))
        full_mask = (gen != pad).long()
        values_seq = critic(gen, full_mask)
        last = (full_mask * torch.arange(full_mask.size(1), device=device)).argmax(dim=1)
        values = values_seq[torch.arange(values_seq.size(0), device=device), last]
        advantages = rewards - values.detach()
        with autocast:
            logits = actor(gen, attention_mask=full_mask).logits
        labels = gen[:, 1:].clone()
        resp = torch.arange(gen.size(1) - 1, device=device).unsqueeze(0) >= P - 1
        final_mask = resp & ~labels.eq(pad)
        actor_logp = seq_logp(logits, labels, final_mask)

        def no_grad_forwards():
            with torch.no_grad():
                return (seq_logp(old_actor(gen, attention_mask=full_mask).logits, labels, final_mask),
                        seq_logp(ref(gen, attention_mask=full_mask).logits, labels, final_mask))
        old_logp, ref_logp = ph.timed("scoring", no_grad_forwards)
        kl_ref = (actor_logp - ref_logp).mean()
        r = torch.exp(actor_logp - old_logp)
        policy_loss = -torch.min(r * advantages, torch.clamp(r, 1 - CLIP, 1 + CLIP) * advantages).mean()
        value_loss = F.mse_loss(values, rewards)
        loss = policy_loss + VF_COEF * value_loss + KL_COEF * kl_ref
        loss.backward()
        torch.nn.utils.clip_grad_norm_(actor.parameters(), GRAD_CLIP)
        torch.nn.utils.clip_grad_norm_(critic.parameters(), GRAD_CLIP)
        actor_opt.step()
        critic_opt.step()
        actor_opt.zero_grad()
        critic_opt.zero_grad()

    class _Both:  # the two optimizers' state, for the static-bytes count (read when counted: AdamW's
        @property  # state only exists after the first step)
        def state(self):
            return {**actor_opt.state, **critic_opt.state}
    return PPOVariant(step, ph, [actor, old_actor, ref, critic], _Both())


# ----------------------------------------------------------------------------------------------
# The section

def bench_ppo(S, device, args, log, workdir):
    name, hidden, layers = S["ppo_config"]
    B, N = S["ppo_prompts"], S["ppo_new_tokens"]
    tok = _tokenizer()
    items, prompt_ids, prompt_texts, same_text_ids = rl_prompts(tok, B, workdir, "ppo_prompts")
    ours, _ = build_pair(hidden, layers, device)
    log(f"[ppo] {name} ({hidden} x {layers}), {B} prompts x 1 completion, {N} new tokens, T={TEMPERATURE}, "
        f"kl_coef={KL_COEF}")
    variants = {"ours": make_ours(copy.deepcopy(ours), tok, items, N, device),
                "minimind": make_minimind(copy.deepcopy(ours), tok, prompt_texts, N, device)}
    mem = {}
    for v, fn in variants.items():  # a warm-up step (AdamW's state exists after it), then one under the probe
        fn()
        with PeakMemory(device, fn.static_bytes()) as pm:
            fn()
        mem[v] = pm
    for fn in variants.values():
        fn.calls.clear()
    times = interleaved(dict(variants), S["reps"], device, warmup=False, log=log)

    res = {"config": name, "hidden_size": hidden, "num_hidden_layers": layers, "params": n_params(ours),
           "prompts": B, "max_new_tokens": N, "prompt_tokens": [len(p) for p in prompt_ids],
           "temperature": TEMPERATURE, "top_p": TOP_P, "kl_coef": KL_COEF, "reward": "length",
           "learning_rate": LR, "critic_learning_rate": CRITIC_LR,
           "dtype": "bfloat16 autocast" if device.type == "cuda" else "float32",
           "models_held": {"ours": "actor, critic (its own trunk), reference",
                           "minimind": "actor, old actor, reference, critic (a whole LM copy)"},
           "same_prompt_ids": same_text_ids, "variants": {}}
    for v, fn in variants.items():
        tokens, roll, scoring = ([c[k] for c in fn.calls] for k in range(3))
        t = times[v]
        tps = [n / s for n, s in zip(tokens, t)]
        res["variants"][v] = {
            "times_s": t, "completion_tokens": tokens, "rollout_s": roll, "scoring_s": scoring,
            "tokens_per_s": {"per_rep": tps, **summary(tps)},
            "phases_s": {"rollout": summary(roll), "scoring": summary(scoring),
                         "update": summary([a - b - c for a, b, c in zip(t, roll, scoring)])},
            "peak_mem_mb": mem[v].mb(), "peak_mem_method": mem[v].method}
    tp = {v: r["tokens_per_s"]["per_rep"] for v, r in res["variants"].items()}
    res["ratios"] = {"ours/minimind": ratio(tp["ours"], tp["minimind"]),
                     "peak memory ours/minimind": {"median": mem["ours"].mb() / mem["minimind"].mb()}}
    return res


def ppo_table(res):
    lines = [f"\n[PPO step] {res['config']} {res['hidden_size']}x{res['num_hidden_layers']}, {res['prompts']} prompts "
             f"x 1 completion, {res['max_new_tokens']} new tokens, T={res['temperature']}, kl_coef={res['kl_coef']}, "
             f"{res['dtype']}; vs MiniMind 83e52f6 train_ppo.py (trl 1.16 has no PPO)",
             f"  {'variant':10s} {'step tokens/s':>22s} {'rollout/scoring/update s':>28s} {'peak MB':>8s}  models"]
    for v, r in res["variants"].items():
        ph = r["phases_s"]
        split = " / ".join(f"{ph[k]['median']:.2f}" for k in ("rollout", "scoring", "update"))
        lines.append(f"  {v:10s} {_fmt(r['tokens_per_s']):>22s} {split:>28s} {r['peak_mem_mb']:8.0f}  "
                     f"{res['models_held'][v]}")
    r = res["ratios"]["ours/minimind"]
    lines.append(f"  ratio ours/minimind step tokens/s          {_fmt(r, '{:.2f}')}x")
    lines.append(f"  ratio ours/minimind peak memory            {res['ratios']['peak memory ours/minimind']['median']:.2f}x")
    return "\n".join(lines)
