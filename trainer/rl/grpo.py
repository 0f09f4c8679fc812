"""GRPO's arithmetic: group-relative advantages and the policy losses, as TRL's GRPOTrainer defines them.

    group_advantages(rewards, G, scale)   (N,) summed rewards (NaN = unscorable), a prompt's G rows
                                          together -> (advantages, is_std_zero); scale "group" divides by
                                          the group's std, "batch" by the whole batch's (TRL's
                                          scale_rewards), "none" only centres (Dr. GRPO)
    policy_loss(...)                      the scalar loss of one micro-batch and its token statistics

Loss types (per-token loss l_t, completion mask m_t):
    grpo     -min(r A, clip(r, 1-eps, 1+eps_high) A) + beta KL; mean over each sequence's tokens, then
             over sequences (MiniMind's and the original GRPO's)
    dr_grpo  the same l_t summed, divided by rows x max completion length (no length bias)
    dapo     the same l_t summed over the step's tokens, divided by their count over every micro-batch
             and rank (token-level, as DAPO)
    cispo    -sg(min(r, eps_high)) A log pi + beta KL, normalised as dapo (MiniMax-M1's CISPO, MiniMind's
             2026 default): a clipped importance weight that never drops a token's gradient
with r = pi / pi_old per token and KL the k3 estimator exp(ref - logp) - (ref - logp) - 1.
"""
import torch

LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "cispo")


def _nanstd(x, dim=None):
    """Sample (Bessel-corrected) std ignoring NaN, as TRL's nanstd."""
    mean = torch.nanmean(x, dim=dim, keepdim=dim is not None)
    count = (~torch.isnan(x)).sum(dim=dim, keepdim=dim is not None)
    var = torch.nanmean((x - mean) ** 2, dim=dim, keepdim=dim is not None) * count / (count - 1).clamp(min=1)
    out = var.sqrt()
    return out.squeeze(dim) if dim is not None else out


def group_advantages(rewards, num_generations, scale="group", batch_std=None):
    """(advantages, is_std_zero), both (N,). A group whose rewards are all equal has std 0 and advantage
    0 (not NaN); an unscorable row (NaN reward) gets advantage 0 and stays out of its group's mean.
    `batch_std`: the std of the whole batch over every rank, for scale="batch" (default: these rows')."""
    grouped = rewards.view(-1, num_generations)
    mean = torch.nanmean(grouped, dim=1).repeat_interleave(num_generations)
    if scale == "batch":
        std = (batch_std if batch_std is not None else _nanstd(rewards)).expand_as(rewards)
    else:
        std = _nanstd(grouped, dim=1).repeat_interleave(num_generations)
    std = torch.nan_to_num(std, nan=0.0)  # a group with a single scorable row
    adv = rewards - mean
    if scale != "none":
        adv = adv / (std + 1e-4)
    return torch.nan_to_num(adv, nan=0.0), torch.isclose(std, torch.zeros_like(std))


def policy_loss(logps, old_logps, ref_logps, advantages, mask, loss_type, epsilon, epsilon_high, beta,
                max_completion_length=None, normalizer=None):
    """(loss, stats) of one micro-batch.

    logps / old_logps / ref_logps (N, C) (ref_logps None when beta is 0), advantages (N,), mask (N, C).
    dr_grpo divides by N x max_completion_length; dapo and cispo by `normalizer`: the token count this
    micro-batch's sum is scaled against (the step's tokens over all micro-batches and ranks, divided by
    their number: the loop averages micro-batches and DDP averages ranks)."""
    mask = mask.to(logps.dtype)
    adv = advantages[:, None].to(logps.dtype)
    coef = torch.exp(logps - old_logps)
    if loss_type == "cispo":
        per_token = -torch.clamp(coef, max=epsilon_high).detach() * adv * logps
    else:
        clipped = torch.clamp(coef, 1 - epsilon, 1 + epsilon_high)
        per_token = -torch.min(coef * adv, clipped * adv)
    kl = None
    if beta != 0.0:
        delta = ref_logps - logps
        kl = torch.exp(delta) - delta - 1
        per_token = per_token + beta * kl
    if loss_type == "grpo":
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "dr_grpo":
        loss = (per_token * mask).sum() / (per_token.shape[0] * max_completion_length)
    elif loss_type in ("dapo", "cispo"):
        loss = (per_token * mask).sum() / max(float(normalizer), 1.0)
    else:
        raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {LOSS_TYPES}")
    real = mask.bool()
    with torch.no_grad():
        stats = {}
        if loss_type == "cispo":
            stats["cispo_clip_ratio"] = ((coef > epsilon_high) & (adv > 0))[real].float()
        else:
            low = (coef < 1 - epsilon) & (adv < 0)
            high = (coef > 1 + epsilon_high) & (adv > 0)
            stats["clip_ratio/low_mean"] = low[real].float()
            stats["clip_ratio/high_mean"] = high[real].float()
            stats["clip_ratio/region_mean"] = (low | high)[real].float()
        if kl is not None:
            stats["kl"] = kl[real].detach()
            stats["kl_ref"] = (ref_logps - logps)[real].detach()
        stats["ratio_max_abs_dev"] = (coef[real] - 1).abs().max().reshape(1) if real.any() else coef.new_zeros(1)
    return loss, stats
