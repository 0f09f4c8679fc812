"""Faults during training, for every stage: keep going where it can, stop cleanly where it cannot.

- A step whose loss or gradient norm is not finite is skipped (no optimizer update, gradients
  cleared; float16's GradScaler lowers its scale as it does for its own skips), with a warning line
  and a count (`skipped_steps` in the log line and on wandb). After --max_bad_steps skips in a row
  the run stops with one line (exit code 2) naming the last saved step.
- Nothing non-finite is ever saved, and a failed save (disk full, read-only directory) stops the
  run with one line; the previous files stay (trainer/checkpoint.py writes atomically).
- Ctrl-C stops with one line saying where, and what was saved (exit code 130).

Under DDP every decision is taken by all ranks together: the skip from one tiny all_reduce of the
ranks' losses and the (already all-reduced) gradient norm, a save's outcome from rank 0's broadcast.
So when one rank meets a fault all ranks stop at the same step with the same line (printed once,
by rank 0, naming the rank), and no rank is left waiting in a collective.
"""
import math

import torch
import torch.distributed as dist

from trainer.errors import UserError


def plural(n, word, many=None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _num(x) -> str:
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf") if math.isinf(x) else f"{x:.4g}"


def agree(trainer, message):
    """Rank 0's `message` (None = all is well) on every rank: one broadcast under DDP."""
    if not trainer.ddp:
        return message
    box = [message]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def saved_phrase(trainer) -> str:
    """What the last successful save left, for the lines that stop a run."""
    if trainer.saved_step is None:
        return "nothing was saved yet"
    wpath, rpath = trainer.saved_paths
    return f"the last save (step {trainer.saved_step}: {wpath}, {rpath}) is intact"


def continue_hint(trainer) -> str:
    if trainer.saved_step is None:
        return "then rerun the same command"
    return f"then rerun with --from_resume 1 to continue from step {trainer.saved_step}"


def remedies(trainer, where=None) -> str:
    """'try a lower --learning_rate (now 0.0005), --dtype float32 or checking the data around ...'"""
    fixes = [f"a lower --learning_rate (now {trainer.args.learning_rate:g})"]
    if trainer.dtype != torch.float32:
        fixes.append("--dtype float32")
    if where:
        fixes.append(f"checking the data around {where}")
    return "try " + (", ".join(fixes[:-1]) + " or " + fixes[-1] if len(fixes) > 1 else fixes[0])


def batch_phrase(epoch, first, last, batches_per_epoch) -> str:
    """'epoch 2, batch 13 of 60' / 'epoch 2, batches 13-14 of 60' (1-based, this rank's order)."""
    b = f"batch {first + 1}" if last == first else f"batches {first + 1}-{last + 1}"
    return f"epoch {epoch + 1}, {b} of {batches_per_epoch}"


class StepGuard:
    """Decides whether an optimizer step is taken; the same answer on every rank."""

    def __init__(self, trainer, max_bad, skipped=0):
        self.t = trainer
        self.max_bad = max_bad  # 0 = never stop, only skip
        self.skipped = skipped  # over the whole run (kept in the resume file)
        self.in_row = 0

    def check(self, loss_sum, grad_norm, scaler, step, total, epoch, first_batch, last_batch, batches_per_epoch):
        """True: take the step. False: skip it (the caller clears the gradients).

        `loss_sum` is this rank's summed loss over the step's micro-batches, `grad_norm` the norm
        of the all-reduced gradients. Raises UserError on every rank after max_bad skips in a row.
        """
        t = self.t
        vec = torch.zeros(t.world_size + 1, dtype=torch.float64, device=loss_sum.device)
        vec[t.rank] = loss_sum.detach().to(torch.float64)
        if t.is_main:
            vec[t.world_size] = grad_norm.detach().to(torch.float64)
        if t.ddp:
            dist.all_reduce(vec)  # sums: each slot has one writer, and NaN/inf survive a sum
        vals = vec.tolist()  # the step's one host sync
        losses, gn = vals[:t.world_size], vals[t.world_size]
        bad = [r for r, v in enumerate(losses) if not math.isfinite(v)]
        if not bad and math.isfinite(gn):
            self.in_row = 0
            return True
        self.skipped += 1
        self.in_row += 1
        if bad:
            on = f" on rank {', '.join(map(str, bad))}" if t.ddp else ""
            what = f"non-finite loss ({_num(losses[bad[0]])}{on})"
        else:
            scaled = f"; float16 loss scale {scaler.get_scale():g} too high, GradScaler halves it" \
                if scaler.is_enabled() else ""
            what = f"non-finite gradient norm ({_num(gn)}{scaled})"
        where = batch_phrase(epoch, first_batch, last_batch, batches_per_epoch)
        row = f"{self.in_row} of --max_bad_steps {self.max_bad} in a row" if self.max_bad else f"{self.in_row} in a row"
        t.log(f"warning: step {step}/{total}: {what} at {where}; step skipped, weights unchanged "
              f"(skipped_steps {self.skipped}; {row})")
        if self.max_bad and self.in_row >= self.max_bad:
            raise UserError(
                f"stopped at step {step}/{total}: {plural(self.in_row, 'step')} in a row had a non-finite loss or "
                f"gradient norm (the last: {what} at {where}); {saved_phrase(t)}; {remedies(t, where)}")
        return False


def interrupt_message(trainer) -> str:
    """The line Ctrl-C prints: where the run was, what was saved, how to continue."""
    t = trainer
    where = f"at step {t.step}/{t.total_steps}" if t.total_steps is not None else "before training started"
    if t.saved_step is not None:
        return (f"interrupted {where}; weights and resume file saved at step {t.saved_step} ({t.saved_paths[1]}); "
                "rerun with --from_resume 1 to continue")
    if t.total_steps is not None:
        return (f"interrupted {where}; nothing saved yet (the first save is at step "
                f"{min(t.args.save_interval, t.total_steps)}, --save_interval {t.args.save_interval})")
    return f"interrupted {where}; nothing saved"
