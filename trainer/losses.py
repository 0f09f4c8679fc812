"""Stage losses: masked next-token cross-entropy, DPO on summed response log-probs, the reward model's."""
import torch
import torch.nn.functional as F


def masked_ce_sum(logits, targets, mask):
    """(sum of per-token CE where mask==1, number of such tokens), CE computed in float32."""
    labels = targets.masked_fill(mask == 0, -100)
    ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1),
                         ignore_index=-100, reduction="sum")
    return ce, mask.sum()


def masked_ce(logits, targets, mask):
    """Mean CE over the masked tokens of a batch (0 if the batch has none, not NaN)."""
    s, n = masked_ce_sum(logits, targets, mask)
    return s / n.clamp(min=1)


def sequence_logps(logits, targets, mask):
    """Per-sequence SUM of log p(target) over tokens where mask==1 (TRL's convention)."""
    labels = targets.masked_fill(mask == 0, 0)
    logp = -F.cross_entropy(logits.float().transpose(1, 2), labels, reduction="none")  # (B, T)
    return (logp * mask).sum(-1)


def dpo_loss(pc, pr, rc, rr, beta):
    """DPO loss per pair and TRL's metrics.

    pc/pr: policy log-probs of chosen/rejected (summed over response tokens), rc/rr: the same
    under the frozen reference. loss = -log sigmoid(beta * ((pc - pr) - (rc - rr))).
    """
    logits = (pc - pr) - (rc - rr)
    losses = -F.logsigmoid(beta * logits)
    chosen_rewards = beta * (pc - rc).detach()
    rejected_rewards = beta * (pr - rr).detach()
    metrics = {
        "rewards/chosen": chosen_rewards,
        "rewards/rejected": rejected_rewards,
        "rewards/accuracies": (chosen_rewards > rejected_rewards).float(),
        "rewards/margins": chosen_rewards - rejected_rewards,
        "logps/chosen": pc.detach(),
        "logps/rejected": pr.detach(),
    }
    return losses, metrics


def reward_loss(chosen, rejected, margin=None, center_rewards_coefficient=None):
    """Bradley-Terry loss per pair, as TRL's RewardTrainer, and its metrics.

    chosen/rejected: the rewards (B,); margin (B,) or None: TRL's optional per-pair margin. The loss is
    -log sigmoid(chosen - rejected - margin), plus center_rewards_coefficient * (chosen + rejected)^2
    (TRL's centering term, which keeps the rewards near 0), whose batch mean is TRL's loss."""
    diff = chosen - rejected
    losses = -F.logsigmoid(diff - margin if margin is not None else diff)
    if center_rewards_coefficient:
        losses = losses + center_rewards_coefficient * (chosen + rejected) ** 2
    both = torch.stack([chosen, rejected], 1).detach()
    metrics = {
        "accuracy": (chosen > rejected).float(),
        "margin": diff.detach(),
        "rewards/chosen": chosen.detach(),
        "rewards/rejected": rejected.detach(),
        "mean_reward": both.mean(1),
        # TRL's batch minimum and maximum (averaged over the logging window, as TRL's are)
        "min_reward": both.min().reshape(1),
        "max_reward": both.max().reshape(1),
    }
    return losses, metrics
