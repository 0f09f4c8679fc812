"""GRPO (and CISPO, Dr. GRPO, DAPO): the stage that makes its batches online (train_grpo.py).

Each optimizer step, `rollout` takes the step's prompts (--batch_size per micro-batch, disjoint per rank),
samples --num_generations completions of each with the rollout engine, scores them with the reward
functions (before any policy or reference forward: MiniMind's #759 ran out of memory the other way),
turns the rewards into group-relative advantages and computes what the update needs that does not change
during it: the reference log-probs (--beta > 0) and, for --num_iterations > 1, the old log-probs, by the
same forward the update uses (with one iteration the old log-probs are the new ones, detached: no extra
forward, as TRL). The loop then takes --num_iterations optimizer steps over those micro-batches, each
micro-batch's loss being trainer/rl/grpo.policy_loss. A prompt's completions stay on its rank.

RolloutStage is what every online stage shares (PPO, trainer/stages/ppo.py, too): the rollout engine on the
policy, sampling and scoring a batch of prompts, the weighted reward, validation by greedy answers scored by
the same rewards, and the --log_completions samples.
"""
import copy
import math
import random

import torch
import torch.distributed as dist

from model.reasoning import open_think
from trainer.checkpoint import unwrap
from trainer.rl import rewards as R
from trainer.rl.grpo import _nanstd, group_advantages, policy_loss
from trainer.rl.rollout import ENGINES, completion_logprobs
from trainer.stages import Stage, add_aux_loss


class RolloutStage(Stage):
    """What the online stages share: sampling from the policy, scoring by the rewards, validation, samples."""

    def __init__(self, args, reward_funcs, reward_weights=None):
        self.args = args
        self.funcs = reward_funcs
        self.weights = torch.tensor(reward_weights if reward_weights else [1.0] * len(reward_funcs), dtype=torch.float64)
        self.ref = None
        self.samples = []  # the last step's (prompt, completion, reward) rows, for --log_completions
        names = [n for n, _ in reward_funcs]
        self.eval_keys = ("n", "reward", "length", *(f"sum/{n}" for n in names), *(f"n/{n}" for n in names))

    def _start_engine(self, trainer, policy):
        """The rollout engine on `policy` (the unwrapped model that generates); each rank its own stream."""
        self.trainer = trainer
        self.tokenizer = trainer.tokenizer
        self.engine = ENGINES[self.args.rollout_engine](policy, trainer.tokenizer, trainer.autocast)
        if trainer.rank:  # each rank samples its own stream (rank 0 keeps --seed's)
            torch.manual_seed(self.args.seed + 7919 * trainer.rank)

    def _rollout(self, items, n, temperature, top_p):
        """(Rollout, each row's fields for the rewards): n completions of each prompt item (temperature 0:
        greedy). The agent stage (agent.py) makes them multi-turn here."""
        roll = self.engine.generate([it["prompt_ids"].tolist() for it in items], n, self.args.max_gen_len,
                                    temperature, top_p)
        return roll, [it["fields"] for it in items for _ in range(n)]

    def _with_thinking(self, items, step):
        """The items with their prompts rendered again, thinking on for a --thinking_ratio share of them (one
        draw per prompt, fixed by --seed, the step and the prompt, as MiniMind-3's RLAIFDataset draws per
        sample); the items themselves when the flag is unset (the template's own default)."""
        ratio = getattr(self.args, "thinking_ratio", None)
        if ratio is None:
            return items
        from dataset.token_cache import tools_of
        from model.chat import build_prompt
        out = []
        for it in items:
            think = random.Random(f"{self.args.seed}:{step}:{it['index']}").random() < ratio
            text = build_prompt(self.tokenizer, it["messages"], 1, enable_thinking=think, tools=tools_of(it["messages"]))
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][-self.args.max_seq_len:]
            out.append({**it, "prompt_ids": torch.tensor(ids, dtype=torch.long)})
        return out

    def _reward_texts(self, prompts, texts):
        """What the reward functions read: a completion after a prompt that opened the think block (MiniMind-3's
        thinking on) gets that opening in front, so `format` and the answer after </think> read as after a
        prompt that did not."""
        return [open_think(p) + t for p, t in zip(prompts, texts)]

    def _scored(self, items, n, temperature, top_p, step=None):
        """(rollout, per-function rewards (N, F), prompt texts), scored before any policy or reference forward."""
        items = self._with_thinking(items, step)
        roll, fields = self._rollout(items, n, temperature, top_p)
        prompts = [t for it in items for t in [self.tokenizer.decode(it["prompt_ids"], skip_special_tokens=False)] * n]
        generated = roll.loss_mask if roll.loss_mask is not None else roll.completion_mask
        ids = [row[m.bool()].tolist() for row, m in zip(roll.completion_ids, generated)]
        texts = self._reward_texts(prompts, roll.texts)
        return roll, R.score(self.funcs, prompts, texts, ids, fields, step=step), prompts

    def _sample_and_score(self, trainer, items, n):
        """(rollout, per-function rewards (N, F), prompt texts): n completions of each prompt item, scored
        before any policy or reference forward."""
        return self._scored(items, n, self.args.temperature, self.args.top_p, step=trainer.step + 1)

    def _weighted(self, per_func):
        """Summed with --reward_weights, NaN only where every function skipped the row (TRL's rule)."""
        total = (torch.nan_to_num(per_func, nan=0.0) * self.weights).sum(1)
        total[torch.isnan(per_func).all(1)] = float("nan")
        return total

    def _reward_metrics(self, per_func, rewards):
        """reward (scorable rows) and rewards/{name}/mean, float64 on the device."""
        m = {"reward": rewards[~torch.isnan(rewards)]}
        for j, (name, _) in enumerate(self.funcs):
            col = per_func[:, j]
            m[f"rewards/{name}/mean"] = col[~torch.isnan(col)]
        return {k: v.to(self.trainer.device, torch.float64) for k, v in m.items()}

    # -- validation: greedy answers to the held-out prompts (--val_data_path), by the same rewards -------
    def eval_sums(self, model, items):
        roll, per_func, _ = self._scored(items, 1, 0.0, 1.0)
        rewards = self._weighted(per_func)
        ok = ~torch.isnan(rewards)
        generated = roll.loss_mask if roll.loss_mask is not None else roll.completion_mask
        sums = {"n": ok.sum(), "reward": rewards[ok].sum(), "length": generated.sum()}
        for j, (name, _) in enumerate(self.funcs):
            col = per_func[:, j]
            sums[f"sum/{name}"], sums[f"n/{name}"] = col[~torch.isnan(col)].sum(), (~torch.isnan(col)).sum()
        return {k: torch.as_tensor(v, dtype=torch.float64, device=self.trainer.device) for k, v in sums.items()}

    def eval_metrics(self, sums):
        out = {"val/reward": sums["reward"] / max(sums["n"], 1.0)}
        for name, _ in self.funcs:
            out[f"val/rewards/{name}/mean"] = sums[f"sum/{name}"] / max(sums[f"n/{name}"], 1.0)
        out["val/completions/mean_length"] = sums["length"] / max(sums["n"], 1.0)
        return out

    # -- what is logged besides the numbers --------------------------------------------------------
    def log_extras(self, trainer, step):
        n = self.args.log_completions
        if not n or not trainer.is_main or not self.samples:
            return {}
        rows = self.samples[:n]
        for prompt, completion, reward in rows:
            trainer.log(f"  [completion] reward {reward:.3f} | prompt: {_one_line(prompt)[-120:]} | "
                        f"completion: {_one_line(completion)[:240]}")
        if trainer.wandb is None:
            return {}
        import wandb
        return {"completions": wandb.Table(columns=["step", "prompt", "completion", "reward"],
                                           data=[[step, p, c, r] for p, c, r in rows])}


class GRPOStage(RolloutStage):
    name = "grpo"
    title = "GRPO"

    def __init__(self, args, reward_funcs, reward_weights=None):
        super().__init__(args, reward_funcs, reward_weights)
        self.num_iterations = args.num_iterations
        self.G = args.num_generations
        self.last_ratio_dev = None

    def fingerprint(self):
        a = self.args
        return {"loss_type": a.loss_type, "beta": a.beta, "num_generations": a.num_generations,
                "num_iterations": a.num_iterations, "epsilon": a.epsilon, "epsilon_high": a.epsilon_high,
                "max_gen_len": a.max_gen_len, "temperature": a.temperature, "top_p": a.top_p,
                "scale_rewards": a.scale_rewards, "mask_truncated_completions": a.mask_truncated_completions,
                "rewards": [n for n, _ in self.funcs], "reward_weights": self.weights.tolist(),
                **({"thinking_ratio": a.thinking_ratio} if getattr(a, "thinking_ratio", None) is not None else {})}

    def prepare(self, trainer, model, train_ds, val_ds, collate, resume_state):
        raw = unwrap(model)
        if self.args.beta != 0.0:  # the starting weights, frozen (resume loads the policy after this)
            self.ref = copy.deepcopy(raw).eval().requires_grad_(False)
        self._start_engine(trainer, raw)

    # -- making the step's batches ---------------------------------------------------------------
    def rollout(self, trainer, model, batches):
        a, raw = self.args, unwrap(model)
        self.engine.update_policy(raw)
        rolls = []
        for items, _ in batches:
            rolls.append(self._sample_and_score(trainer, items, self.G))
        # advantages: per group, or over the whole batch of every rank (--scale_rewards batch)
        all_rewards = [self._weighted(pf) for _, pf, _ in rolls]
        batch_std = self._batch_std(torch.cat(all_rewards)) if a.scale_rewards == "batch" else None
        loss_masks = [self._loss_mask(r) for r, _, _ in rolls]
        normalizer = None
        if a.loss_type in ("dapo", "cispo"):  # the step's tokens over every micro-batch and rank
            total = torch.tensor(float(sum(int(m.sum()) for m in loss_masks)), device=trainer.device)
            if trainer.ddp:
                dist.all_reduce(total)
            normalizer = float(total) / (len(rolls) * trainer.world_size)
        micro, self.samples = [], []
        for (roll, per_func, prompts), rewards, mask in zip(rolls, all_rewards, loss_masks):
            adv, zero_std = group_advantages(rewards, self.G, a.scale_rewards, batch_std)
            batch = {"roll": roll, "advantages": adv.to(trainer.device, torch.float32), "loss_mask": mask,
                     "normalizer": normalizer, "ref_logps": None, "old_logps": None}
            with torch.no_grad(), trainer.autocast():
                if self.ref is not None:
                    batch["ref_logps"] = completion_logprobs(self.ref, roll, a.temperature)[0]
                if self.num_iterations > 1:
                    batch["old_logps"] = completion_logprobs(model, roll, a.temperature)[0]
            batch["metrics"] = self._rollout_metrics(roll, per_func, rewards, adv, zero_std)
            micro.append((batch, int(roll.completion_mask.sum())))
            scored = [(p, t, float(r)) for p, t, r in zip(prompts, roll.texts, rewards)]
            self.samples.extend(scored)
        return micro

    def _loss_mask(self, roll):
        """The tokens the update trains on: the generated ones, less truncated rows with
        --mask_truncated_completions."""
        mask = roll.loss_mask if roll.loss_mask is not None else roll.completion_mask
        return mask * (~roll.truncated[:, None]) if self.args.mask_truncated_completions else mask

    def _batch_std(self, rewards):
        ok = ~torch.isnan(rewards)
        vec = torch.tensor([float(ok.sum()), float(rewards[ok].sum()), float((rewards[ok] ** 2).sum())],
                           dtype=torch.float64, device=self.trainer.device)
        if self.trainer.ddp:
            dist.all_reduce(vec)
        n, s, ss = vec.tolist()
        var = (ss - s * s / n) / (n - 1) if n > 1 else 0.0
        return torch.tensor(math.sqrt(max(var, 0.0)), dtype=torch.float64)

    def _rollout_metrics(self, roll, per_func, rewards, adv, zero_std):
        dev = self.trainer.device
        lengths = (roll.loss_mask if roll.loss_mask is not None else roll.completion_mask).sum(1).double()
        m = {"completions/mean_length": lengths, "avg_response_len": lengths,
             "completions/clipped_ratio": roll.truncated.double(), "frac_reward_zero_std": zero_std.double(),
             "reward_std": torch.nan_to_num(_nanstd(rewards), nan=0.0).reshape(1), "advantages_mean": adv.mean().reshape(1),
             "advantages_std": adv.std().reshape(1) if len(adv) > 1 else adv.new_zeros(1)}
        m = {k: v.to(dev, torch.float64) for k, v in m.items()}
        m.update(self._reward_metrics(per_func, rewards))
        return m

    # -- the update ------------------------------------------------------------------------------
    def loss(self, model, batch):
        a, roll = self.args, batch["roll"]
        logps, entropy, out = completion_logprobs(model, roll, a.temperature, with_entropy=True)
        self.last_logps = logps.detach()
        old = batch["old_logps"] if batch["old_logps"] is not None else logps.detach()
        loss, stats = policy_loss(logps, old, batch["ref_logps"], batch["advantages"], batch["loss_mask"],
                                  a.loss_type, a.epsilon, a.epsilon_high, a.beta,
                                  max_completion_length=a.max_gen_len, normalizer=batch["normalizer"])
        self.last_ratio_dev = float(stats.pop("ratio_max_abs_dev"))
        metrics = dict(batch["metrics"])
        metrics.update(stats)
        metrics["entropy"] = entropy[batch["loss_mask"].bool()]
        metrics["policy_loss"] = loss.detach().reshape(1)
        return add_aux_loss(loss, out, metrics)


def _one_line(text):
    return " ".join(str(text).split())
