"""Learning-rate schedule, counted in optimizer steps (not micro-batches)."""
import math


def get_lr(step, total_steps, lr, warmup_iters=0):
    """Linear warmup to `lr`, then cosine decay to MiniMind's floor of lr/10.

    MiniMind's formula lr/10 + lr/2*(1+cos) started at 1.1*lr; here the peak is the
    --learning_rate asked for and the floor is still lr/10.
    """
    min_lr = lr / 10
    if warmup_iters > 0 and step < warmup_iters:
        return lr * (step + 1) / warmup_iters
    span = max(1, total_steps - warmup_iters)
    progress = min(1.0, max(0.0, (step - warmup_iters) / span))
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))
