"""Stages: what differs between pretraining, SFT, DPO and the stages after them.

`Trainer.fit` (trainer/loop.py) runs any `Stage`: the stage gives the loss of a batch, the sums
validation adds up and the metrics made from them, and may prepare itself once before training
(DPO caches its reference log-probs) and keep state in the resume file; and it decides what the
weights and resume files hold (the whole model by default; LoRA: only the adapter).
"""
import math

import torch

from trainer.checkpoint import export_state_dict, unwrap


class Stage:
    """A training objective. `loss` returns (scalar loss to backprop, {metric: per-sample values})."""
    name = "stage"
    title = "Stage"
    eval_keys = ()

    def loss(self, model, batch):
        raise NotImplementedError

    def eval_sums(self, model, batch):
        """{key: summed tensor} over one validation batch, for every key in eval_keys."""
        raise NotImplementedError

    def eval_metrics(self, sums):
        raise NotImplementedError

    def prepare(self, trainer, model, train_ds, val_ds, collate, resume_state):
        """Called once before training, with the starting weights loaded (DPO caches its reference here)."""

    def state_dict(self):
        return {}

    def fingerprint(self):
        """Settings that change the stage's math: a resume file made with others is refused."""
        return {}

    # What the run writes. The defaults are MiniMind2's: the whole model in the weights file
    # ({out_dir}/{save_weight}_{dim}[_moe].pth, float16) and in the resume file (full precision).
    # A stage that trains a part of the model (LoRA) writes only that part.
    def weights_path(self, args):
        """Path of the weights file, or None for {out_dir}/{save_weight}_{dim}[_moe].pth."""
        return None

    def weights_state(self, model):
        """The state dict the weights file holds."""
        return export_state_dict(model)

    def model_state(self, model):
        """The model's part of the resume file."""
        return unwrap(model).state_dict()

    def load_model_state(self, model, state):
        """Restore model_state() when resuming (the starting weights are already loaded)."""
        unwrap(model).load_state_dict(state, strict=True)


class LMStage(Stage):
    """Next-token cross-entropy over the masked targets (pretraining: all; SFT: assistant tokens)."""
    eval_keys = ("ce_sum", "tokens")

    def __init__(self, name, title):
        self.name, self.title = name, title

    def loss(self, model, batch):
        from trainer.fused_loss import fused_masked_ce
        X, Y, mask = batch
        # hidden states only: the LM head runs in chunks, on target positions only (trainer/fused_loss.py)
        out = model(X, skip_logits=True)
        loss = fused_masked_ce(out.hidden_states[-1], unwrap(model).lm_head.weight, Y, mask)
        return add_aux_loss(loss, out)

    def eval_sums(self, model, batch):
        from trainer.fused_loss import fused_masked_ce_sum
        X, Y, mask = batch
        out = model(X, skip_logits=True)
        s, n = fused_masked_ce_sum(out.hidden_states[-1], unwrap(model).lm_head.weight, Y, mask)
        return {"ce_sum": s.double(), "tokens": n.double()}

    def eval_metrics(self, sums):
        loss = (sums["ce_sum"] / max(sums["tokens"], 1.0))
        return {"val/loss": loss, "val/ppl": math.exp(min(loss, 50.0))}

def add_aux_loss(loss, out, metrics=None):
    """Add the MoE load-balancing loss (0 for dense models); log it when it is live."""
    metrics = {} if metrics is None else metrics
    aux = getattr(out, "aux_loss", None)
    if aux is not None:
        loss = loss + aux
        if torch.is_tensor(aux) and aux.requires_grad:
            metrics["aux_loss"] = aux.detach().reshape(1)
    return loss, metrics
