"""PPO: the actor-critic stage that makes its batches online (train_ppo.py).

The model the trainer holds is trainer/rl/ppo.ActorCritic: the actor (the policy) and the critic (its own
copy of the trunk under a value head), trained by one optimizer with two parameter groups (peak rates
--learning_rate and --critic_learning_rate, both on the trainer's schedule, each clipped on its own).

Each rollout (the step's prompts: --batch_size x --accumulation_steps per rank, one completion each, the same
engine, prompts and rewards as GRPO) is scored first, then, by the forward the update uses, the old
log-probs and values and the frozen reference's log-probs are computed; the reward sits on each completion's
last token and GAE (--gamma, --lam) gives the advantages (whitened over the step's tokens on every rank) and
the returns. The loop then takes num_iterations optimizer steps: --ppo_update_iters shuffled passes, each
over minibatches of --mini_batch_size rows (in micro-batches of --batch_size rows); one minibatch is one
optimizer step. The old values are computed on the first pass's very micro-batches, so the first update's
log-ratio is exactly 0 (MiniMind's #814). When a minibatch's approximate KL to the rollout's policy passes
--early_stop_kl, its gradients are dropped and the rollout's remaining steps take no update (the schedule
advances through them all the same, as MiniMind's). A row no reward could score stays out of the update.
"""
import copy

import torch
import torch.distributed as dist

from trainer.checkpoint import export_state_dict, unwrap
from trainer.rl.ppo import explained_variance, gae, last_token_rewards, masked_whiten, ppo_loss
from trainer.rl.rollout import completion_logprobs, concat_rollouts, token_logprobs
from trainer.stages import add_aux_loss
from trainer.stages.grpo import RolloutStage


def optimizer_steps_per_rollout(args):
    """--ppo_update_iters x the minibatches of a full rollout (--batch_size x --accumulation_steps rows)."""
    rows = args.batch_size * args.accumulation_steps
    return args.ppo_update_iters * -(-rows // min(args.mini_batch_size, rows))


class PPOStage(RolloutStage):
    name = "ppo"
    title = "PPO"

    def __init__(self, args, reward_funcs, reward_weights=None):
        super().__init__(args, reward_funcs, reward_weights)
        self.num_iterations = optimizer_steps_per_rollout(args)
        self.stopped = False  # this rollout's updates stopped early (--early_stop_kl)
        self.early_stops = 0
        self.last_log_ratio_max = None  # max |log r| over the real tokens of the last micro-batch
        self._kl = [0.0, 0.0]  # this step's sum of approx_kl and its token count

    def fingerprint(self):
        a = self.args
        return {"critic_learning_rate": a.critic_learning_rate, "gamma": a.gamma, "lam": a.lam,
                "clip_epsilon": a.clip_epsilon, "cliprange_value": a.cliprange_value, "vf_coef": a.vf_coef,
                "kl_coef": a.kl_coef, "ppo_update_iters": a.ppo_update_iters, "mini_batch_size": a.mini_batch_size,
                "early_stop_kl": a.early_stop_kl, "max_gen_len": a.max_gen_len, "temperature": a.temperature,
                "top_p": a.top_p, "rewards": [n for n, _ in self.funcs], "reward_weights": self.weights.tolist(),
                **({"thinking_ratio": a.thinking_ratio} if getattr(a, "thinking_ratio", None) is not None else {})}

    def param_groups(self, model, args):
        raw = unwrap(model)
        return [{"params": [p for p in raw.actor.parameters() if p.requires_grad], "lr": args.learning_rate,
                 "name": "actor"},
                {"params": [p for p in raw.critic.parameters() if p.requires_grad], "lr": args.critic_learning_rate,
                 "name": "critic"}]

    def prepare(self, trainer, model, train_ds, val_ds, collate, resume_state):
        raw = unwrap(model)
        if self.args.kl_coef != 0.0:  # the starting actor, frozen (resume loads the trained one after this)
            self.ref = copy.deepcopy(raw.actor).eval().requires_grad_(False)
        self._start_engine(trainer, raw.actor)

    def weights_state(self, model):
        """The weights file holds the actor alone: a chat model like every other stage's."""
        return export_state_dict(unwrap(model).actor)

    # -- the forward the rollout's old values and the update share -----------------------------------------
    def _forward(self, model, roll):
        """(log-probs, values, actor output, critic aux loss) of a rollout's completion tokens, (N, C) each, 0 on
        padding: values[:, t] is the critic's estimate before completion token t (TRL's and MiniMind's)."""
        out, values, critic_aux = model(roll.input_ids, attention_mask=roll.attention_mask)
        logps, _ = token_logprobs(unwrap(model).actor.lm_head, out.hidden_states[-1], roll, self.args.temperature)
        C = roll.completion_ids.shape[1]
        return logps, values[:, -C - 1:-1] * roll.completion_mask, out, critic_aux

    # -- making the step's batches ---------------------------------------------------------------
    def rollout(self, trainer, model, batches):
        a, raw = self.args, unwrap(model)
        self.engine.update_policy(raw.actor)
        self.stopped, self._kl = False, [0.0, 0.0]
        parts = [self._sample_and_score(trainer, items, 1) for items, _ in batches]
        roll = concat_rollouts([p[0] for p in parts], trainer.pad_id)
        per_func = torch.cat([p[1] for p in parts])
        prompts = [t for p in parts for t in p[2]]
        rewards = self._weighted(per_func)
        scored = ~torch.isnan(rewards)
        dev = roll.completion_mask.device
        mask = roll.completion_mask.float() * scored.to(dev)[:, None].float()  # unscorable rows: no update
        N, C = mask.shape

        # the optimizer steps: --ppo_update_iters shuffles, minibatches of --mini_batch_size rows, micro-batches
        # of --batch_size rows (the shuffles come from the global RNG: the resume file holds it)
        mb = max(1, min(a.mini_batch_size, N))
        plan = []
        for _ in range(a.ppo_update_iters):
            perm = torch.randperm(N)
            for s in range(0, N, mb):
                rows = perm[s:s + mb]
                plan.append([rows[k:k + a.batch_size] for k in range(0, len(rows), a.batch_size)])
        first_pass = -(-N // mb)

        # old log-probs and values through the forward the update uses, on the first pass's own micro-batches
        old_logps, old_values = torch.zeros(N, C, device=dev), torch.zeros(N, C, device=dev)
        ref_logps = torch.zeros(N, C, device=dev) if self.ref is not None else None
        with torch.no_grad(), trainer.autocast():
            for chunks in plan[:first_pass]:
                for idx in chunks:
                    sub = roll.rows(idx)
                    c = sub.completion_ids.shape[1]
                    lp, v, _, _ = self._forward(model, sub)
                    old_logps[idx, :c], old_values[idx, :c] = lp.float(), v.float()
                    if self.ref is not None:
                        ref_logps[idx, :c] = completion_logprobs(self.ref, sub, a.temperature)[0].float()
        old_values = old_values * mask
        token_rewards = last_token_rewards(torch.nan_to_num(rewards, nan=0.0), mask)
        adv, returns = gae(token_rewards, old_values, mask, a.gamma, a.lam)
        raw_adv = adv
        adv = masked_whiten(adv, mask, dist.all_reduce if trainer.ddp else None)

        lengths = roll.completion_mask.sum(1).double()
        metrics = {"avg_response_len": lengths, "value_mean": old_values[mask.bool()].double(),
                   "returns_mean": returns[mask.bool()].double(), "advantages_mean": raw_adv[mask.bool()].double(),
                   "completions/clipped_ratio": roll.truncated.double()}
        ev = explained_variance(old_values, returns, mask)
        if ev is not None:
            metrics["explained_variance"] = torch.tensor([ev], dtype=torch.float64)
        metrics = {k: v.to(trainer.device, torch.float64) for k, v in metrics.items()}
        metrics.update(self._reward_metrics(per_func, rewards))

        data = {"roll": roll, "mask": mask, "old_logps": old_logps, "old_values": old_values, "ref_logps": ref_logps,
                "advantages": adv, "returns": returns}
        micro = []
        for k, chunks in enumerate(plan):
            n_tok = float(sum(mask[idx].sum() for idx in chunks))
            micro.append([({"data": data, "idx": idx, "normalizer": max(n_tok, 1.0) / len(chunks),
                            "metrics": metrics if j == 0 else {}},
                           int(roll.completion_mask[idx].sum()) if k < first_pass else 0)
                          for j, idx in enumerate(chunks)])
        self.samples = [(p, t, float(r)) for p, t, r in zip(prompts, roll.texts, rewards)]
        return micro

    def iteration_batches(self, micro, iteration):
        """Optimizer step `iteration`'s minibatch; none once --early_stop_kl has stopped this rollout (the
        decision is every rank's) or past a short last rollout's minibatches (equal on every rank)."""
        if self.stopped or iteration >= len(micro):
            return []
        return micro[iteration]

    # -- the update ------------------------------------------------------------------------------
    def loss(self, model, batch):
        a, d, idx = self.args, batch["data"], batch["idx"]
        sub = d["roll"].rows(idx)
        c = sub.completion_ids.shape[1]
        logps, values, out, critic_aux = self._forward(model, sub)
        mask = d["mask"][idx, :c]
        ref = d["ref_logps"][idx, :c] if d["ref_logps"] is not None else None
        loss, stats = ppo_loss(logps, d["old_logps"][idx, :c], ref, values, d["old_values"][idx, :c],
                               d["advantages"][idx, :c], d["returns"][idx, :c], mask, a.clip_epsilon,
                               a.cliprange_value, a.vf_coef, a.kl_coef, batch["normalizer"])
        lr = (logps.detach() - d["old_logps"][idx, :c]) * mask
        self.last_log_ratio_max = float(lr.abs().max()) if lr.numel() else 0.0
        self._kl[0] += float(stats["approx_kl"].sum())
        self._kl[1] += float(stats["approx_kl"].numel())
        metrics = dict(batch["metrics"])
        metrics.update(stats)
        loss, metrics = add_aux_loss(loss, out, metrics)
        if torch.is_tensor(critic_aux) and critic_aux.requires_grad:  # a MoE critic's load balancing
            loss = loss + critic_aux
        return loss, metrics

    def accept_step(self, trainer):
        """MiniMind's early stop: the minibatch's approximate KL to the rollout's policy (over every rank's
        tokens) above --early_stop_kl drops its update and the rollout's remaining ones."""
        s, n = self._kl
        self._kl = [0.0, 0.0]
        vec = torch.tensor([s, n], dtype=torch.float64, device=trainer.device)
        if trainer.ddp:
            dist.all_reduce(vec)
        approx_kl = float(vec[0]) / max(float(vec[1]), 1.0)
        if approx_kl > self.args.early_stop_kl:
            self.stopped = True
            self.early_stops += 1
            trainer.log(f"early stop at optimizer step {trainer.step + 1}/{trainer.total_steps}: approximate KL "
                        f"{approx_kl:.4f} > --early_stop_kl {self.args.early_stop_kl:g}; this minibatch and the rest "
                        f"of the rollout's take no update ({self.early_stops} early stop(s) so far)")
            return False
        return True
