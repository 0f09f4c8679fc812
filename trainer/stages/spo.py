"""SPO: one completion per prompt against a per-prompt value tracker (train_spo.py; trainer/rl/spo.py).

Each optimizer step, `rollout` samples ONE completion of each of the step's prompts with GRPO's engine and
scores it with GRPO's rewards; every rank then sees every rank's (prompt index, reward) rows, so that the
trackers stay identical everywhere and the advantages are normalised over the whole batch, as the paper
does: A = r - baseline(prompt) (the tracker read before this reward), then (A - mean) / std over all rows.
The trackers then take the rewards. The update is GRPO's policy loss (--loss_type, the k3 KL to the frozen
start with --beta) on those advantages. With --prioritized_sampling (the paper's curriculum) the prompts
themselves are drawn by the trackers (trainer/rl/spo.PrioritizedSampler). After the step's updates, `after_updates` measures how far they
moved the policy (mean |log pi_new - log pi_old| over the step's completion tokens, every rank's): the
drift the trackers' KL-adaptive forgetting reads. The trackers live in the resume file.

MiniMind's own SPO (October 2025) kept one global baseline for every prompt; its README says its SPO "may
have problems".
"""
import torch
import torch.distributed as dist

from trainer.checkpoint import unwrap
from trainer.rl.grpo import _nanstd
from trainer.rl.rollout import completion_logprobs
from trainer.rl.spo import PrioritizedSampler, ValueTracker, normalized_advantages
from trainer.stages.grpo import GRPOStage, RolloutStage


class SPOStage(GRPOStage):
    name = "spo"
    title = "SPO"

    def __init__(self, args, reward_funcs, reward_weights=None):
        RolloutStage.__init__(self, args, reward_funcs, reward_weights)
        self.num_iterations, self.G, self.last_ratio_dev = args.num_iterations, 1, None
        self.tracker = None
        self.micro = []
        self.last_drift = None

    def fingerprint(self):
        a = self.args
        return {"loss_type": a.loss_type, "beta": a.beta, "num_iterations": a.num_iterations, "epsilon": a.epsilon,
                "epsilon_high": a.epsilon_high, "max_gen_len": a.max_gen_len, "temperature": a.temperature,
                "top_p": a.top_p, "mask_truncated_completions": a.mask_truncated_completions,
                "rewards": [n for n, _ in self.funcs], "reward_weights": self.weights.tolist(),
                "rho_mode": a.rho_mode, "rho_const": a.rho_const, "d_half": a.d_half, "rho_min": a.rho_min,
                "rho_max": a.rho_max, "prior": a.prior, "prioritized_sampling": a.prioritized_sampling,
                "init_samples": getattr(a, "init_samples", 0)}

    def prepare(self, trainer, model, train_ds, val_ds, collate, resume_state):
        a = self.args
        super().prepare(trainer, model, train_ds, val_ds, collate, resume_state)
        self.tracker = ValueTracker(len(train_ds), prior=a.prior, rho_mode=a.rho_mode, rho_const=a.rho_const,
                                    d_half=a.d_half, rho_min=a.rho_min, rho_max=a.rho_max)
        if resume_state and "tracker" in resume_state:
            self.tracker.load_state_dict(resume_state["tracker"])
            self.last_drift = resume_state.get("last_drift")
        elif getattr(a, "init_samples", 0):
            self._estimate_trackers(trainer, train_ds)

    def _estimate_trackers(self, trainer, train_ds):
        """The paper's offline initialisation: --init_samples completions of every training prompt from the
        starting policy (sampled as in training, scored by the same rewards), each rank a share of the prompts;
        every rank then sets every tracker from every rank's rows."""
        a, n = self.args, self.args.init_samples
        mine = list(range(trainer.rank, len(train_ds), trainer.world_size))
        trainer.log(f"SPO: estimating the {len(train_ds)} prompts' trackers from {n} samples each "
                    f"(--init_samples; {len(train_ds) * n} completions)")
        rows = [torch.zeros(0, 4, dtype=torch.float64)]
        for at in range(0, len(mine), a.batch_size):
            items = [train_ds[i] for i in mine[at:at + a.batch_size]]
            _, per_func, _ = self._scored(items, n, a.temperature, a.top_p, step=0)
            r = self._weighted(per_func).reshape(len(items), n)
            ok = ~torch.isnan(r)
            count = ok.sum(1).double()
            z = torch.nan_to_num(r, nan=0.0)
            rows.append(torch.stack([torch.tensor([it["index"] for it in items], dtype=torch.float64),
                                     z.sum(1) / count.clamp(min=1.0), (z * z).sum(1) / count.clamp(min=1.0), count], 1))
        every, _ = self._gather_rows(trainer, torch.cat(rows))
        self.tracker.initialize(every[:, 0].long(), every[:, 1], every[:, 2], every[:, 3])
        known = self.tracker.visits > 0
        trainer.log(f"SPO: trackers estimated; mean baseline {float(self.tracker.baseline(known.nonzero()[:, 0]).mean()):.3f}"
                    if known.any() else "SPO: no prompt could be scored; every tracker keeps --prior")

    def batch_sampler(self, trainer, train_ds, sampler):
        if not self.args.prioritized_sampling:
            return sampler
        if getattr(train_ds, "streaming", False):
            trainer.log("--prioritized_sampling: a streamed data set is read in order; the prompts come as they are")
            return sampler
        return PrioritizedSampler(self, len(train_ds), self.args.batch_size, trainer.rank, trainer.world_size,
                                  self.args.seed)

    def state_dict(self):
        return {"tracker": self.tracker.state_dict(), "last_drift": self.last_drift}

    # -- making the step's batches ---------------------------------------------------------------
    def rollout(self, trainer, model, batches):
        a, raw = self.args, unwrap(model)
        self.engine.update_policy(raw)
        rolls = [self._sample_and_score(trainer, items, 1) + ([it["index"] for it in items],) for items, _ in batches]
        rewards = [self._weighted(pf) for _, pf, _, _ in rolls]
        idx = torch.tensor([i for r in rolls for i in r[3]], dtype=torch.long)
        every, first = self._gather_rows(trainer, torch.stack([idx.double(), torch.cat(rewards).double()], 1))
        every_idx, every_r = every[:, 0].long(), every[:, 1]
        baseline = self.tracker.baseline(every_idx)
        revisit = self.tracker.visits[every_idx] > 0
        distance = (self.tracker.odometer - self.tracker.last_odometer[every_idx])[revisit]
        every_adv = normalized_advantages(every_r - baseline)
        rho = self.tracker.update(every_idx, every_r)
        spo_metrics = {"spo/baseline": baseline, "spo/rho": rho[~torch.isnan(rho)],
                       "spo/first_sampled_ratio": (~revisit).double(), "spo/D": distance,
                       "spo/adv_before_norm": (every_r - baseline)[~torch.isnan(every_r)]}
        if self.last_drift is not None:
            spo_metrics["spo/drift"] = torch.tensor([self.last_drift], dtype=torch.float64)
        spo_metrics = {k: v.to(trainer.device, torch.float64) for k, v in spo_metrics.items() if v.numel()}
        # the batch's statistics are every rank's rows: each rank logs the same values, once per step
        mine = every_adv[first:first + len(idx)]
        loss_masks = [self._loss_mask(r) for r, _, _, _ in rolls]
        normalizer = None
        if a.loss_type in ("dapo", "cispo"):
            total = torch.tensor(float(sum(int(m.sum()) for m in loss_masks)), device=trainer.device)
            if trainer.ddp:
                dist.all_reduce(total)
            normalizer = float(total) / (len(rolls) * trainer.world_size)
        micro, self.samples, at = [], [], 0
        for k, ((roll, per_func, prompts, _), rew, mask) in enumerate(zip(rolls, rewards, loss_masks)):
            adv = mine[at:at + len(rew)]
            at += len(rew)
            batch = {"roll": roll, "advantages": adv.to(trainer.device, torch.float32), "loss_mask": mask,
                     "normalizer": normalizer, "ref_logps": None, "old_logps": None, "acting_logps": None}
            with torch.no_grad(), trainer.autocast():
                if self.ref is not None:
                    batch["ref_logps"] = completion_logprobs(self.ref, roll, a.temperature)[0]
                if self.num_iterations > 1:
                    batch["old_logps"] = completion_logprobs(model, roll, a.temperature)[0]
                    batch["acting_logps"] = batch["old_logps"]
            metrics = self._rollout_metrics(roll, per_func, rew, adv, torch.zeros(len(rew), dtype=torch.bool))
            metrics.pop("frac_reward_zero_std")
            metrics["reward_std"] = torch.nan_to_num(_nanstd(every_r), nan=0.0).reshape(1).to(trainer.device)
            if k == 0:
                metrics.update(spo_metrics)
            batch["metrics"] = metrics
            micro.append((batch, int(roll.completion_mask.sum())))
            self.samples.extend((p, t, float(r)) for p, t, r in zip(prompts, roll.texts, rew))
        self.micro = micro
        return micro

    def _gather_rows(self, trainer, rows):
        """(every rank's (k, c) float64 rows, ranks in order, where this rank's rows start)."""
        if not trainer.ddp:
            return rows.double(), 0
        dev = trainer.device
        n = torch.tensor([len(rows)], device=dev)
        sizes = [torch.zeros_like(n) for _ in range(trainer.world_size)]
        dist.all_gather(sizes, n)
        sizes = [int(s) for s in sizes]
        padded = torch.full((max(sizes), rows.shape[1]), float("nan"), dtype=torch.float64, device=dev)
        padded[:len(rows)] = rows.double().to(dev)
        out = [torch.empty_like(padded) for _ in range(trainer.world_size)]
        dist.all_gather(out, padded)
        return torch.cat([o[:s] for o, s in zip(out, sizes)]).cpu(), sum(sizes[:trainer.rank])

    # -- the update, and how far it moved the policy ------------------------------------------------
    def loss(self, model, batch):
        loss, metrics = super().loss(model, batch)
        if batch["acting_logps"] is None:  # the rollout's first update: these are the acting policy's log-probs
            batch["acting_logps"] = self.last_logps
        return loss, metrics

    def after_updates(self, trainer, model):
        if self.args.rho_mode != "kl" or not self.micro:
            return
        raw = unwrap(model)
        total = torch.zeros(2, dtype=torch.float64, device=trainer.device)
        with torch.no_grad(), trainer.autocast():
            for batch, _ in self.micro:
                roll, mask = batch["roll"], batch["roll"].completion_mask.bool()
                now = completion_logprobs(raw, roll, self.args.temperature)[0]
                total[0] += (now.float() - batch["acting_logps"].float()).abs()[mask].double().sum()
                total[1] += mask.sum()
        if trainer.ddp:
            dist.all_reduce(total)
        self.last_drift = float(total[0] / total[1].clamp(min=1.0))
        self.tracker.add_drift(self.last_drift)
        self.micro = []
