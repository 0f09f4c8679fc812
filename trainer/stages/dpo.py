"""DPO with the reference log-probs computed once.

The reference policy is the starting (SFT) weights, frozen. Its log-probs of every chosen and
rejected response depend only on those weights and the data, so they are computed in one
no-grad pass before the first step and kept (keyed by data-set index, saved in the resume file);
a training step is then only the policy's forward/backward on chosen+rejected. No second model
stays in memory.
"""
import math
import time

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from trainer.checkpoint import unwrap
from trainer.fused_loss import fused_sequence_logps
from trainer.losses import dpo_loss
from trainer.loop import to_device
from trainer.stages import Stage, add_aux_loss
from trainer.sampler import ShardedEvalSampler

METRICS = ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
           "logps/chosen", "logps/rejected")


def policy_logps(model, batch):
    """Summed response log-probs of chosen and rejected, in one forward over both."""
    x = torch.cat([batch["x_chosen"], batch["x_rejected"]])
    y = torch.cat([batch["y_chosen"], batch["y_rejected"]])
    m = torch.cat([batch["mask_chosen"], batch["mask_rejected"]])
    # hidden states only: the LM head runs in chunks, on response positions only (trainer/fused_loss.py)
    out = model(x, skip_logits=True)
    pc, pr = fused_sequence_logps(out.hidden_states[-1], unwrap(model).lm_head.weight, y, m).chunk(2)
    return pc, pr, out


@torch.no_grad()
def compute_reference_logps(model, ds, collate, device, batch_size, autocast, rank=0, world_size=1,
                            log=print, what="pairs"):
    """(len(ds), 2) float32 tensor of [chosen, rejected] summed log-probs under `model` (frozen).

    Each rank scores a disjoint shard; a SUM all_reduce assembles the whole table on every rank.
    """
    was_training = model.training
    model.eval()
    ref = torch.zeros(len(ds), 2, dtype=torch.float32, device=device)
    seen = torch.zeros(len(ds), dtype=torch.float32, device=device)
    sampler = ShardedEvalSampler(ds.lengths, batch_size, rank, world_size)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=0)
    t0 = time.time()
    with autocast():
        for batch in loader:
            batch = to_device(batch, device)
            pc, pr, _ = policy_logps(model, batch)
            idx = batch["index"]
            ref[idx, 0], ref[idx, 1] = pc.float(), pr.float()
            seen[idx] += 1
    if world_size > 1:
        dist.all_reduce(ref)
        dist.all_reduce(seen)
    model.train(was_training)
    if not bool((seen == 1).all()):
        raise RuntimeError("reference pass did not score every pair exactly once")
    log(f"reference log-probs for {len(ds)} {what} computed in {time.time() - t0:.1f}s (cached for training)")
    return ref.cpu()


class DPOStage(Stage):
    name, title = "dpo", "DPO"
    eval_keys = ("loss_sum", "acc_sum", "pairs", "chosen_logp_sum", "chosen_tokens")

    def __init__(self, beta):
        self.beta = beta
        self.ref = None      # (N, 2) for the training set
        self.val_ref = None  # (N_val, 2) for --val_data_path

    def fingerprint(self):
        return {"beta": self.beta}

    def state_dict(self):
        return {"ref": self.ref, "val_ref": self.val_ref}

    def prepare(self, trainer, model, train_ds, val_ds, collate, resume_state):
        if resume_state is not None and resume_state.get("ref") is not None:
            # the weights are no longer the reference: take its log-probs from the resume file
            self.ref = resume_state["ref"]
            self.val_ref = resume_state.get("val_ref")
            if len(self.ref) != len(train_ds):
                raise RuntimeError("resume file's reference table does not match the data set")
        else:
            self.ref = self._score(trainer, model, train_ds, collate)
        if val_ds is not None and (self.val_ref is None or len(self.val_ref) != len(val_ds)):
            if resume_state is not None:
                trainer.log("warning: validation set changed since the run started; scoring it with the "
                            "resumed policy as reference")
            self.val_ref = self._score(trainer, model, val_ds, collate, "validation pairs")

    def _score(self, trainer, model, ds, collate, what="pairs"):
        return compute_reference_logps(model, ds, collate, trainer.device, trainer.args.batch_size,
                                       trainer.autocast, trainer.rank, trainer.world_size, trainer.log, what)

    def _ref_for(self, table, index, device):
        r = table[index.cpu()].to(device)
        return r[:, 0], r[:, 1]

    def loss(self, model, batch):
        pc, pr, out = policy_logps(model, batch)
        rc, rr = self._ref_for(self.ref, batch["index"], pc.device)
        losses, metrics = dpo_loss(pc, pr, rc, rr, self.beta)
        return add_aux_loss(losses.mean(), out, metrics)

    def eval_sums(self, model, batch):
        pc, pr, _ = policy_logps(model, batch)
        rc, rr = self._ref_for(self.val_ref, batch["index"], pc.device)
        losses, m = dpo_loss(pc, pr, rc, rr, self.beta)
        return {"loss_sum": losses.double().sum(), "acc_sum": m["rewards/accuracies"].double().sum(),
                "pairs": torch.tensor(float(len(pc)), dtype=torch.float64),
                "chosen_logp_sum": pc.double().sum(),
                "chosen_tokens": batch["mask_chosen"].double().sum()}

    def eval_metrics(self, s):
        n = max(s["pairs"], 1.0)
        nll = -s["chosen_logp_sum"] / max(s["chosen_tokens"], 1.0)
        return {"val/loss": s["loss_sum"] / n, "val/rewards/accuracies": s["acc_sum"] / n,
                # perplexity of the chosen responses: does preference tuning hurt the model's fluency?
                "val/ppl": math.exp(min(nll, 50.0))}
