"""The training stages: here the Stage protocol and LMStage (pretrain, SFT); one module per other stage.

A stage is what differs between pretraining, SFT, DPO and the stages after them (dpo.py,
distill.py, reason_sft.py, lora.py, reward.py, grpo.py, ppo.py, spo.py beside this file).

`Trainer.fit` (trainer/loop.py) runs any `Stage`: the stage gives the loss of a batch, the sums
validation adds up and the metrics made from them, and may prepare itself once before training
(DPO caches its reference log-probs) and keep state in the resume file; and it decides what the
weights and resume files hold (the whole model by default; LoRA: only the adapter).

Each optimizer step, the loop hands the stage the loader's batches of that step (--accumulation_steps
of them) and trains on what `rollout` returns. Offline stages return them unchanged; an RL stage
(grpo.py) makes its batches online there: it generates from the prompts, scores the completions and
returns the micro-batches to train on, over which the loop then takes `num_iterations` optimizer steps
(each on the micro-batches `iteration_batches` picks: all of them by default; PPO, ppo.py: one minibatch
each, and none once `accept_step` has stopped the rollout's updates early), then calls `after_updates`.

What is trained is `param_groups`: one group of every trainable parameter at --learning_rate by default;
PPO's actor and critic are two groups with their own peak rates. Each group follows the one LR schedule
from its own peak and is clipped to --grad_clip on its own.
"""
import math

import torch

from trainer.checkpoint import export_state_dict, unwrap


class Stage:
    """A training objective. `loss` returns (scalar loss to backprop, {metric: per-sample values})."""
    name = "stage"
    title = "Stage"
    eval_keys = ()
    num_iterations = 1  # optimizer steps taken on each rollout (GRPO's --num_iterations)

    def rollout(self, trainer, model, batches):
        """[(micro-batch, input tokens)] one optimizer step trains on, from the loader's [(batch, tokens)]
        of that step (already on the device). Offline stages train on the batches as they are."""
        return batches

    def param_groups(self, model, args):
        """The optimizer's parameter groups: [{"params": [...], "lr": peak learning rate, "name": ...}].
        Every group follows the LR schedule from its own peak and is clipped to --grad_clip on its own;
        with more than one, each group's current rate is logged as {name}_lr. Default: one group of every
        trainable parameter (LoRA freezes the base weights) at --learning_rate. Called once, before prepare()."""
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": args.learning_rate}]

    def batch_sampler(self, trainer, train_ds, sampler):
        """The training set's batch order: the loop's (shuffled, length-grouped, resumable) by default. SPO
        draws its prompts by its trackers (trainer/rl/spo.PrioritizedSampler); a sampler with in_process set
        is read in the training process (no DataLoader workers)."""
        return sampler

    def iteration_batches(self, micro, iteration):
        """The [(micro-batch, input tokens)] that optimizer step `iteration` (0 .. num_iterations - 1) of
        this rollout trains on, from what `rollout` returned; its tokens are counted once (in tok/s). []
        takes no step (the schedule still advances): the same answer on every rank. Default: all of them,
        every iteration, their tokens counted in the first."""
        return micro if iteration == 0 else [(batch, 0) for batch, _ in micro]

    def accept_step(self, trainer):
        """After a step's backward, before the optimizer: False drops the step's gradients (no update, the
        schedule still advances; its metrics are logged). Called on every rank, the same answer on each
        (PPO's early stop on the approximate KL)."""
        return True

    def after_updates(self, trainer, model):
        """Called once the optimizer steps on a rollout are all taken (every rank), before a checkpoint may be
        written: SPO measures here how far they moved the policy."""

    def log_extras(self, trainer, step):
        """More of the logged row, at each log step (rank 0 and the others alike): GRPO's completion samples."""
        return {}

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
    """Next-token cross-entropy over the masked targets (pretraining: all; SFT: assistant tokens).

    Validation reports val/loss, val/ppl and val/bpb (bits per byte of the target text; trainer/bpb.py)."""
    eval_keys = ("ce_sum", "tokens", "special_ce_sum", "text_bytes")
    token_bytes = None  # (vocab,) UTF-8 bytes per token id, 0 for special tokens; set by prepare()

    def __init__(self, name, title):
        self.name, self.title = name, title

    def prepare(self, trainer, model, train_ds, val_ds, collate, resume_state):
        if val_ds is not None and getattr(trainer, "tokenizer", None) is not None:
            from trainer.bpb import token_byte_lengths
            self.token_bytes = token_byte_lengths(trainer.tokenizer)

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
        h, w = out.hidden_states[-1], unwrap(model).lm_head.weight
        s, n = fused_masked_ce_sum(h, w, Y, mask)
        sums = {"ce_sum": s.double(), "tokens": n.double()}
        if self.token_bytes is not None:
            table = self.token_bytes.to(Y.device)
            nbytes = table[Y.clamp(0, len(table) - 1)] * (mask > 0)
            special = (mask > 0) & (nbytes == 0)  # <|im_end|> etc.: no text, left out of bpb
            sums["text_bytes"] = nbytes.sum().double()
            if special.any():  # the few special targets alone through the head
                sums["special_ce_sum"] = fused_masked_ce_sum(h, w, Y, special.to(mask.dtype))[0].double()
        return sums

    def eval_metrics(self, sums):
        loss = (sums["ce_sum"] / max(sums["tokens"], 1.0))
        metrics = {"val/loss": loss, "val/ppl": math.exp(min(loss, 50.0))}
        if sums.get("text_bytes", 0) > 0:
            from trainer.bpb import bits_per_byte
            metrics["val/bpb"] = bits_per_byte(sums["ce_sum"] - sums.get("special_ce_sum", 0.0), sums["text_bytes"])
        return metrics

def add_aux_loss(loss, out, metrics=None):
    """Add the MoE load-balancing loss (0 for dense models); log it when it is live."""
    metrics = {} if metrics is None else metrics
    aux = getattr(out, "aux_loss", None)
    if aux is not None:
        loss = loss + aux
        if torch.is_tensor(aux) and aux.requires_grad:
            metrics["aux_loss"] = aux.detach().reshape(1)
    return loss, metrics
